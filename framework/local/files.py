"""File names inside a local AWS home (``.mlops/local``)."""

STATE_FILE = "daemon.json"  # pid, ports, start time; present while the daemon runs
LOG_FILE = "daemon.log"
REPLAY_FILE = "replay.json"  # pid and writes replayed so far, while a starting daemon replays
JOURNAL_FILE = "journal.jsonl"  # every control-plane write, replayed on start
JOURNAL_BLOBS_DIR = "journal-blobs"  # the journal's large request bodies, by sha256
S3_OBJECTS_DIR = "s3-objects"  # S3 objects' bytes that are no journal blob, by sha256
CODE_DIR = "code"  # extracted function zips, by sha256
LOGS_DIR = "logs"  # what each function prints, and its START/END/REPORT lines
SCHEDULER_FILE = "scheduler.json"  # the local scheduler's last fire per rule
OUTBOX_DIR = "outbox"  # every SES message sent to the control plane, as .eml
LAYERS_DIR = "layers"  # extracted layer zips, by sha256 (what Lambda mounts under /opt); shared
RUNTIMES_DIR = "runtimes"  # awslambdaric + SDK per runtime and architecture (/var/runtime); shared
