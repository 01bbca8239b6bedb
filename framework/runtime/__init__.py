"""The part of the framework that ships inside Lambda zips.

Depends only on the standard library, numpy, onnxruntime and boto3 (present in the Lambda
Python runtime); never on pydantic, yaml, typer or anything else of the control side.
"""
