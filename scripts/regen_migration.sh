#!/usr/bin/env bash
# Until the first release the schema lives in one initial migration: regenerate it from the
# models after a model change. (After a release, add a new revision instead.)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f recoup/migrations/versions/0001_initial_schema.py
.venv/bin/python - "$tmp" <<'PY'
import sys
from alembic import command
from recoup.core.schema import alembic_config
config = alembic_config(f"sqlite:///{sys.argv[1]}/gen.db")
command.revision(config, message="initial schema", autogenerate=True, rev_id="0001")
PY
rm -rf "$tmp"
echo "regenerated recoup/migrations/versions/0001_initial_schema.py"
