# Shared by scripts/serve and scripts/test: make sure .venv exists and holds this checkout's
# dependencies. Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_python() {
  for candidate in python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "mailramp needs Python 3.11 or newer; none found on PATH" >&2
  return 1
}

ensure_venv() {
  local extras="$1"  # "" or "[dev]"
  local python
  python="$(find_python)"
  if [ ! -x "$VENV/bin/python" ]; then
    if ! "$python" -m venv "$VENV" 2>/dev/null; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing python3-venv" >&2
        apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
        rm -rf "$VENV"
        "$python" -m venv "$VENV"
      else
        echo "cannot create a virtual environment: install python3-venv" >&2
        return 1
      fi
    fi
  fi
  local stamp="$VENV/.installed$extras"
  local digest
  digest="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "installing mailramp$extras into .venv" >&2
    local log="$VENV/pip.log"
    if ! "$VENV/bin/python" -m pip install --quiet -e "$ROOT$extras" >"$log" 2>&1; then
      grep -v '^WARNING: Location' "$log" >&2
      echo "installing mailramp$extras failed (full log: $log)" >&2
      return 1
    fi
    echo "$digest" >"$stamp"
  fi
  # mailramp's own modules compiled once, here: with PYTHONDONTWRITEBYTECODE set (as on
  # these machines) every `mailramp` process would otherwise compile its ~230 modules
  # again (a quarter of a second each time; the suite starts hundreds). Only changed files
  # are compiled again; a stale cache is never used (Python checks the source's mtime).
  "$VENV/bin/python" -m compileall -q "$ROOT/src" >/dev/null
}

# A command-line tool the tests run, in a virtual environment of its own (its pins must not
# move the project's): `ensure_tool NAME VERSION` installs NAME==VERSION once, into
# .test-services/tools/NAME (its command: .test-services/tools/NAME/bin/NAME).
ensure_tool() {
  local name="$1" version="$2"
  local home="$ROOT/.test-services/tools/$name"
  if [ -x "$home/bin/$name" ] && [ "$(cat "$home/.version" 2>/dev/null)" = "$version" ]; then
    return 0
  fi
  echo "installing $name $version into .test-services/tools/$name" >&2
  rm -rf "$home"
  "$(find_python)" -m venv "$home"
  if ! "$home/bin/python" -m pip install --quiet "$name==$version" >"$home.log" 2>&1; then
    grep -v '^WARNING: Location' "$home.log" >&2
    echo "installing $name $version failed (full log: $home.log)" >&2
    return 1
  fi
  echo "$version" >"$home/.version"
}
