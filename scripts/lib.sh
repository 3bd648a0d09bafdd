# Shared helpers for the scripts in this directory. Source it; it defines functions only.

# Prints a message to stderr, prefixed so the user knows which script said it.
vp_say() { printf '%s: %s\n' "${VP_SCRIPT:-vp}" "$*" >&2; }

# Prints an error with what to do next, then exits non-zero.
vp_die() { printf '%s: error: %s\n' "${VP_SCRIPT:-vp}" "$*" >&2; exit 1; }

# The repository root (the parent of this scripts/ directory).
vp_repo_root() { (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd); }

# Prints the absolute path of a `just` binary, looking on PATH first and then where
# `pip install rust-just` and `cargo install just` put it (those may not be on PATH,
# e.g. a pyenv interpreter whose shims were not rehashed, or ~/.local/bin for --user).
# Prints nothing and returns 1 when there is none.
vp_find_just() {
  local found dir
  if found="$(command -v just 2>/dev/null)" && "$found" --version >/dev/null 2>&1; then
    printf '%s\n' "$found"
    return 0
  fi
  local -a dirs=()
  if command -v python3 >/dev/null 2>&1; then
    dir="$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))' 2>/dev/null || true)"
    [ -n "$dir" ] && dirs+=("$dir")
    dir="$(python3 -m site --user-base 2>/dev/null || true)"
    [ -n "$dir" ] && dirs+=("$dir/bin")
  fi
  dirs+=("$HOME/.local/bin" "${CARGO_HOME:-$HOME/.cargo}/bin")
  for dir in "${dirs[@]}"; do
    if [ -x "$dir/just" ] && "$dir/just" --version >/dev/null 2>&1; then
      printf '%s\n' "$dir/just"
      return 0
    fi
  done
  return 1
}

# Puts the directory of `just` on PATH for the calling script (after bootstrap installed it).
vp_use_just() {
  local just
  just="$(vp_find_just)" || vp_die "\`just\` is not installed: run \`bash scripts/bootstrap.sh\` first"
  case ":$PATH:" in
    *":$(dirname "$just"):"*) ;;
    *) PATH="$(dirname "$just"):$PATH"; export PATH ;;
  esac
}
