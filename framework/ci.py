"""``mlops ci init``: a GitHub Actions workflow running the same commands a person runs.

- pull requests: validate → gates (``mlops test``) → plan against the stage, saved as
  ``plan.json`` and rendered as ``plan.md`` (a comment-ready Markdown table), both uploaded
  as artifacts, and ``plan.md`` posted to the job summary;
- pushes to the main branch: deploy the reviewed stage (gates again, then the rollouts);
- a daily schedule: retrain models whose monitors asked for it (on the declared training data
  plus the labelled production rows of the last days, when the models declare training data),
  register the versions that pass their gates, and open a pull request that bumps their
  versions in ``mlops.yaml`` (with the new artifacts and training rows): merging it deploys
  them, and until then the declared versions on the main branch stay what runs, so no push
  ships an older version back (``mlops plan`` refuses a declared version below the deployed
  one in any case).

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
    permissions:
      id-token: write
      contents: write
      pull-requests: write
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with: {{python-version: "${{{{ env.PYTHON_VERSION }}}}"}}
      - run: pip install {install}
      - uses: aws-actions/configure-aws-credentials@v4
        with:
          role-to-assume: ${{{{ vars.AWS_DEPLOY_ROLE_ARN }}}}
          aws-region: {region}
      - name: Retrain what monitors asked for; register the versions that pass their gates
        run: >-
          mlops retrain --pending{production} --register
          --summary "$RUNNER_TEMP/mlops-retrain.md" --file {config} --stage $MLOPS_STAGE
      - name: Propose the new versions in a pull request
        if: ${{{{ !cancelled() }}}}
        env:
          GH_TOKEN: ${{{{ secrets.MLOPS_PR_TOKEN || github.token }}}}
          BASE: {branch}
          BRANCH: mlops/retrain-{stage}
        run: |
{propose}"""


# The pull-request step: a shell script that also runs outside GitHub (the tests run it).
PROPOSE = """\
if git diff --quiet; then
  echo "no new model version to propose"
  exit 0
fi
summary="$RUNNER_TEMP/mlops-retrain.md"
body="$RUNNER_TEMP/mlops-pr-body.md"
[ -s "$summary" ] || printf 'mlops: retrained models\\n\\n' > "$summary"
git config user.name "github-actions[bot]"
git config user.email "41898282+github-actions[bot]@users.noreply.github.com"
git switch -C "$BRANCH"
git add --update
git commit --quiet --file "$summary"
git push --force origin "$BRANCH"
if ! command -v gh >/dev/null 2>&1; then
  echo "::warning::gh (the GitHub CLI) is not installed: pushed $BRANCH;" \\
       "open a pull request from it into $BASE"
  exit 0
fi
title="$(head -n 1 "$summary")"
tail -n +3 "$summary" > "$body"
open="$(gh pr list --head "$BRANCH" --base "$BASE" --state open --json url --jq '.[0].url')"
if [ -n "$open" ]; then
  gh pr edit "$open" --title "$title" --body-file "$body"
  echo "updated $open"
else
  gh pr create --base "$BASE" --head "$BRANCH" --title "$title" --body-file "$body"
fi
"""
DEFAULT_PRODUCTION_WINDOW = "7d"


def workflow(*, stage: str, region: str, branch: str = "main", config: str = "mlops.yaml",
             install: str = "-e '.[build]'", python: str = "3.11",
             production_window: str | None = None) -> str:
    """The workflow's text; ``production_window`` makes the retrain job learn from the
    labelled production rows of that window too (``mlops retrain --with-production``)."""
    production = f" --with-production {production_window}" if production_window else ""
    propose = "".join(f"          {line}\n" if line else "\n"
                      for line in PROPOSE.splitlines())
    return WORKFLOW.format(stage=stage, region=region, branch=branch, config=config,
                           install=install, python=python, production=production,
                           propose=propose)


def retrain_steps(text: str) -> list[str]:
    """The shell scripts (``run:``) of the workflow's retrain job, in order."""
    import yaml

    job = yaml.safe_load(text)["jobs"]["retrain"]
    return [str(step["run"]) for step in job["steps"] if "run" in step]


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
            lines.append(f"| {mark} {plan.label(a)} | `{a.id}` | {a.kind} | {reason} |")
    else:
        lines.append("No changes.")
    lines += ["", *(f"> **hint:** {hint}" for hint in plan.hints)] if plan.hints else []
    return "\n".join(lines) + "\n"
