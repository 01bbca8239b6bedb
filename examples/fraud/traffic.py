"""Send card payments to the deployed fraud endpoint, then the chargeback labels as feedback.

    python traffic.py [--rows 600] [--seed 11] [--drift] [--batch 25] [--url URL]
                      [--until-file PATH]

Payments come from the same generator as the training data (``transactions.py``), drawn with
another seed: ordinary days look like training. ``--drift`` is the new fraud pattern: card
testing (tiny daytime app payments at digital-goods merchants) and eight times as much fraud.
After each batch the true labels go to ``<url>/feedback`` (in a bank they arrive later, as
chargebacks), so the monitor can measure ROC-AUC per model version. Prints how much fraud the
endpoint caught. ``--until-file`` keeps sending (fresh seeds) until that file exists: traffic
while a rollout runs. The URL defaults to the ``score`` endpoint of ./mlops.yaml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from transactions import FRAUD, transactions

from framework.client import EndpointClient, Sent, endpoint_url, until_file


def send(client: EndpointClient, rows: int, seed: int, drift: bool, batch: int) -> Sent:
    records, labels = transactions(rows, seed, fraud_rate=0.12 if drift else 0.015,
                                   pattern="card_testing" if drift else "none")
    sent = client.send(records, labels, batch=batch)
    fraud = [i for i, label in enumerate(labels) if label == FRAUD]
    caught = sum(1 for i in fraud if sent.predictions[i] == FRAUD)
    flagged = sum(1 for p in sent.predictions if p == FRAUD)
    print(f"{'card-testing wave' if drift else 'ordinary day'}: {sent.describe()}; caught "
          f"{caught} of {len(fraud)} frauds, {flagged - caught} legitimate payments flagged")
    return sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=600)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--drift", action="store_true", help="the card-testing wave")
    ap.add_argument("--batch", type=int, default=25)
    ap.add_argument("--url", help="endpoint URL (default: ask the deploy state)")
    ap.add_argument("--until-file", type=Path, help="repeat until this file exists")
    args = ap.parse_args()
    client = EndpointClient(args.url or endpoint_url("mlops.yaml", "score"))
    if args.until_file is None:
        send(client, args.rows, args.seed, args.drift, args.batch)
        return
    total = until_file(args.until_file,
                       lambda i: send(client, args.rows, args.seed + i, args.drift, args.batch))
    print(f"while the rollout ran: {total.describe()}")


if __name__ == "__main__":
    main()
