# The bash driver's setup (src/kernels/drivers/bash.ts), sent once to a fresh `bash` on its stdin
# after a line that sets __sa_dir, the driver's private directory. Every name starts with __sa_
# and the functions are read-only: a cell cannot break the protocol by accident.
__sa_busy=
__sa_unwinding=
__sa_saved_options=
__sa_saved_debug=
__sa_names=()
__sa_values=()
__sa_states=()
exec {__sa_out}>&1 {__sa_err}>&2
builtin readonly __sa_dir __sa_out __sa_err
__sa_int() {
  [[ -n $__sa_busy && -z $__sa_unwinding ]] || return 0
  __sa_unwinding=1
  __sa_saved_options=$-
  builtin shopt -q extdebug && __sa_saved_options+=E
  __sa_saved_debug=$(builtin trap -p DEBUG)
  builtin shopt -s extdebug
  builtin set -T
  builtin trap 'if [[ -n $__sa_unwinding && ${#BASH_SOURCE[@]} -gt 0 && ${BASH_SOURCE[-1]} == "$__sa_dir/cell.sh" ]]; then return 2; fi' DEBUG
}
__sa_pre() {
  __sa_busy=1
  builtin trap __sa_int INT
  if [[ -e $__sa_dir/interrupt ]]; then
    local __sa_for=
    IFS= builtin read -r __sa_for < "$__sa_dir/interrupt"
    if [[ $__sa_for == "$1" ]]; then __sa_int; fi
  fi
  __sa_names=() __sa_values=() __sa_states=()
  [[ $2 == 1 ]] || return 0
  local __sa_kv __sa_n
  while IFS= builtin read -r -d '' __sa_kv; do
    __sa_n=${__sa_kv%%=*}
    __sa_names+=("$__sa_n")
    if [[ -v $__sa_n ]]; then
      __sa_values+=("${!__sa_n}")
      if [[ ${!__sa_n@a} == *x* ]]; then __sa_states+=(x); else __sa_states+=(v); fi
    else
      __sa_values+=("")
      __sa_states+=(u)
    fi
    builtin export -- "$__sa_kv"
  done < "$__sa_dir/env"
  return 0
}
__sa_post() {
  local __sa_status=$?
  __sa_busy=
  if [[ -n $__sa_unwinding ]]; then
    builtin trap - DEBUG
    [[ $__sa_saved_options == *T* ]] || builtin set +T
    [[ $__sa_saved_options == *E* ]] || builtin shopt -u extdebug
    [[ -z $__sa_saved_debug ]] || builtin eval "$__sa_saved_debug"
    __sa_unwinding=
    __sa_status=130
  fi
  local __sa_i __sa_n
  for ((__sa_i = ${#__sa_names[@]} - 1; __sa_i >= 0; __sa_i--)); do
    __sa_n=${__sa_names[__sa_i]}
    case ${__sa_states[__sa_i]} in
      u) builtin unset -v "$__sa_n" ;;
      x) builtin export -- "$__sa_n=${__sa_values[__sa_i]}" ;;
      *) builtin export -n -- "$__sa_n"; builtin printf -v "$__sa_n" %s "${__sa_values[__sa_i]}" ;;
    esac
  done
  __sa_names=() __sa_values=() __sa_states=()
  builtin printf '\036SA%s:%s\n' "$1" "$__sa_status" >&"$__sa_out"
  builtin printf '\036SA%s:%s\n' "$1" "$__sa_status" >&"$__sa_err"
}
builtin readonly -f __sa_int __sa_pre __sa_post
