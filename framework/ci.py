"""``mlops ci init``: a GitHub Actions workflow running the same commands a person runs.

- pull requests: validate → gates (``mlops test``) → plan against the stage, saved as
  ``plan.json`` and rendered as ``plan.md`` (a comment-ready Markdown table), both uploaded
  as artifacts, and ``plan.md`` posted to the job summary;
- pushes to the main branch: deploy the reviewed stage (gates again, then the rollouts);
- a daily schedule: retrain models whose monitors asked for it, and ship them.

AWS credentials come from an IAM role assumed through GitHub's OIDC provider
(``AWS_DEPLOY_ROLE_ARN``), so no long-lived keys are stored in the repository.
"""

from __future__ import annotations

from pathlib import Path

from framework.plan.planner import Op, Plan

WORKFLOW = """\
# Written by `mlops ci init`. Validate, test and plan on pull requests; deploy on {branch};
# retrain daily what monitors asked for. Needs a repository variable AWS_DEPLOY_ROLE_ARN:
# an IAM role GitHub's OIDC provider may assume, allowed what `mlops doctor` checks.
name: mlops
on:
  pull_request:
  push:
    branches: [{branch}]
  schedule:
    - cron: "17 3 * * *"
  workflow_dispatch:

permissions:
  id-token: write
  contents: read

concurrency:
  group: mlops-{stage}
  cancel-in-progress: false

env:
  MLOPS_STAGE: {stage}
  PYTHON_VERSION: "{python}"

jobs:
  check:
    if: github.event_name == 'pull_request'
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {{python-version: "${{{{ env.PYTHON_VERSION }}}}"}}
      - run: pip install {install}
      - run: mlops validate --file {config} --stage $MLOPS_STAGE
      - run: mlops test --file {config} --stage $MLOPS_STAGE --offline
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{{{ vars.AWS_DEPLOY_ROLE_ARN }}}}
          aws-region: {region}
      - run: mlops plan --file {config} --stage $MLOPS_STAGE -o plan.json --markdown plan.md
      - run: cat plan.md >> "$GITHUB_STEP_SUMMARY"
      - uses: actions/upload-artifact@v4
        with: {{name: mlops-plan, path: "plan.json\\nplan.md"}}

  deploy:
    if: github.event_name == 'push' || github.event_name == 'workflow_dispatch'
    runs-on: ubuntu-latest
    environment: {stage}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {{python-version: "${{{{ env.PYTHON_VERSION }}}}"}}
      - run: pip install {install}
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{{{ vars.AWS_DEPLOY_ROLE_ARN }}}}
          aws-region: {region}
      - run: mlops doctor --file {config} --stage $MLOPS_STAGE
      - run: mlops deploy --file {config} --stage $MLOPS_STAGE
      - uses: actions/upload-artifact@v4
        with: {{name: mlops-lock, path: mlops.lock}}

  retrain:
    if: github.event_name == 'schedule'
    runs-on: ubuntu-latest
    environment: {stage}
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {{python-version: "${{{{ env.PYTHON_VERSION }}}}"}}
      - run: pip install {install}
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{{{ vars.AWS_DEPLOY_ROLE_ARN }}}}
          aws-region: {region}
      - run: mlops retrain --pending --deploy --file {config} --stage $MLOPS_STAGE
"""


def workflow(*, stage: str, region: str, branch: str = "main", config: str = "mlops.yaml",
             install: str = "-e '.[build]'", python: str = "3.11") -> str:
    return WORKFLOW.format(stage=stage, region=region, branch=branch, config=config,
                           install=install, python=python)


def write(root: Path, text: str, *, force: bool = False) -> Path:
    path = root / ".github" / "workflows" / "mlops.yml"
    if path.exists() and not force and path.read_text() != text:
        from framework.errors import MlopsError

        raise MlopsError(f"{path} exists and differs", hint="pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def plan_markdown(plan: Plan) -> str:
    """A plan as a Markdown table, ready to paste in a pull-request comment."""
    counts = plan.counts()
    lines = [f"### mlops plan: {plan.project}/{plan.stage} on {plan.target} ({plan.region})",
             "",
             f"**{counts['create']}** to create, **{counts['update']}** to update, "
             f"**{counts['replace']}** to replace, **{counts['delete']}** to delete, "
             f"{counts['no-op']} unchanged.", ""]
    if plan.changes:
        lines += ["| action | resource | kind | reason |", "|---|---|---|---|"]
        for a in plan.changes:
            reason = a.reason.replace("|", "\\|")
            mark = {Op.create: "➕", Op.update: "✏️", Op.replace: "♻️", Op.delete: "➖"}.get(
                a.op, "")
            lines.append(f"| {mark} {a.op.value} | `{a.id}` | {a.kind} | {reason} |")
    else:
        lines.append("No changes.")
    return "\n".join(lines) + "\n"
