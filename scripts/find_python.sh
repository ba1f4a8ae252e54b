#!/bin/sh
# Prints the newest supported Python on this machine (3.13, then 3.12, then 3.11); used by the
# Makefile when PYTHON is not given. `find_python.sh 11` looks for 3.11 only (.ci/run).
# Each candidate is run once: a pyenv shim on PATH exists for every installed version but fails
# for versions that are not active, so pyenv's own
# installations are tried as well.
for minor in ${@:-13 12 11}; do
  for candidate in "python3.$minor" \
      $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3."$minor".*/bin/python3."$minor" 2>/dev/null | sort -r); do
    if "$candidate" -c 'import sys' >/dev/null 2>&1; then
      command -v "$candidate"
      exit 0
    fi
  done
done
echo "no supported Python (3.11-3.13) found" >&2
exit 1
