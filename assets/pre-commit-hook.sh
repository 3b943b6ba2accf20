#!/bin/sh
# botgate pre-commit hook: refuse a commit whose staged files contain a botgate Client Secret
# (bgs_…, checksum-verified) or a hard-coded CF-Access-Client-Secret value.
#
# Install:  cp assets/pre-commit-hook.sh .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit
# Binary:   `botgate` on PATH, or set BOTGATE=/path/to/botgate
# History:  `botgate scan --git .` checks every commit already made (run it once, and in CI).
set -eu

BOTGATE=${BOTGATE:-botgate}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

# Scan what is staged (the index), not the work tree: that is what the commit will contain.
git diff --cached --name-only --diff-filter=ACMR -z | git checkout-index --prefix="$tmp/" -z --stdin
[ -n "$(ls -A "$tmp")" ] || exit 0

cd "$tmp"
if ! "$BOTGATE" scan .; then
    echo "pre-commit: leaked secret(s) in the staged files above (paths relative to the repository root); commit refused." >&2
    echo "pre-commit: remove the secret, revoke it (botgate token revoke NAME) and issue a new one." >&2
    exit 1
fi
