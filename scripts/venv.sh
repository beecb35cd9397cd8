# Sourced by ./run and ./test: make .venv and install a requirements file into it,
# again only when that file has changed since the last install.
set -euo pipefail
ensure_venv() {
  local requirements="$1"
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv (Python 3.11+ needed: $(python3 --version))"
    python3 -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
  fi
  local stamp=".venv/.installed-$(basename "$requirements")"
  if ! cat requirements*.txt | cmp -s - "$stamp"; then
    echo "installing $requirements into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
    cat requirements*.txt > "$stamp"
  fi
}
