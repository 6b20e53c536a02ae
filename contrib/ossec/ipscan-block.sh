#!/bin/sh
# ipscan-block.sh: OSSEC / Wazuh active response that blocks a source with ipscan's XDP block list
# (`ipscan block add ADDR --ttl DURATION` / `ipscan block del ADDR`). It replaces firewall-drop.sh:
# the drop happens in the NIC driver before the kernel's stack, and every block carries a TTL, so a
# block still expires when the manager's "delete" never comes (an agent restart forgets its timers).
#
# Speaks the three protocols an agent may use, told apart by how it was started:
#   OSSEC (and Wazuh < 4.2):  ipscan-block.sh add|delete USER SRCIP [ALERTID RULEID AGENT FILENAME ...]
#   Wazuh 4.2 and later:      no arguments; one JSON line on stdin:
#       {"version":1,"origin":{...},"command":"add"|"delete",
#        "parameters":{"extra_args":[...],"alert":{..."data":{"srcip":"1.2.3.4"}...},"program":"..."}}
#     For "add" the script answers on stdout with
#       {"version":1,"origin":{"name":"ipscan-block.sh","module":"active-response"},
#        "command":"check_keys","parameters":{"keys":["1.2.3.4"]}}
#     and reads one more line whose "command" is "continue" or "abort" (execd aborts a repeat of a
#     response that is still active for the same keys). "delete" has no handshake.
#   Wazuh 5.x:                no arguments; {"command":"enable"|"disable","source":{"ip":"1.2.3.4"},
#     "wazuh":{"active_response":{...,"stateful_timeout":N}}} on stdin, no handshake; a stateful
#     timeout N > 0 becomes the block's TTL (N seconds), since 5.x leaves the timeout to the script.
#
# TTL: `--ttl DURATION` or `--ttl=DURATION` among the extra arguments (Wazuh <extra_args>, or trailing
# OSSEC arguments), else $IPSCAN_TTL, else 3600s. DURATION is digits with an optional s, m or h.
#
# Environment: IPSCAN (ipscan binary; default: ipscan on PATH, then /usr/local/sbin, /usr/sbin),
# IPSCAN_TTL, IPSCAN_AR_LOG (log file; default <ossec dir>/logs/active-responses.log, as Wazuh's own
# scripts use).
#
# The address is validated (IPv4 dotted quad, or IPv6, each with an optional /len) before ipscan is run:
# it comes from a log line, and anything else must never reach a command line. Prefixes wider than /8
# (IPv4) or /32 (IPv6) are refused: a block of 0.0.0.0/0 from an alert would cut the host off.
#
# JSON is read with awk field splits, not a JSON parser (agents need not have python3 or jq). That is sound
# here because execd writes the message unformatted on one line (cJSON_PrintUnformatted) with "command"
# before "parameters", srcip is taken from its first occurrence (alert.data.srcip; the decoded log inside
# "full_log" has its quotes escaped, so it cannot fake a "srcip":" key), and whatever comes out is still
# validated as an address.

NAME=$(basename "$0")
DEFAULT_TTL=3600s

log() {
    if [ -n "$LOG_FILE" ]; then
        printf '%s %s: %s\n' "$(date '+%Y/%m/%d %H:%M:%S')" "$NAME" "$*" >>"$LOG_FILE" 2>/dev/null
    fi
}

die() {
    log "$*"
    printf '%s: %s\n' "$NAME" "$*" >&2
    exit 1
}

# Where to log: $IPSCAN_AR_LOG, else the installation's logs/ (the script lives in
# <dir>/active-response/bin/), else nowhere but stderr.
if [ -n "${IPSCAN_AR_LOG:-}" ]; then
    LOG_FILE=$IPSCAN_AR_LOG
else
    LOG_FILE=
    home=$(cd "$(dirname "$0")/../.." 2>/dev/null && pwd)
    if [ -n "$home" ] && [ -d "$home/logs" ] && [ -w "$home/logs" ]; then
        LOG_FILE=$home/logs/active-responses.log
    fi
fi

# --- validation --------------------------------------------------------------------------------

# A decimal number without sign or leading zeros, at most MAX.
is_dec() { # value max
    case $1 in
        '' | *[!0-9]*) return 1 ;;
        0) return 0 ;;
        0*) return 1 ;;
    esac
    [ "${#1}" -le 3 ] && [ "$1" -le "$2" ]
}

is_ipv4() {
    case $1 in *.*.*.*.* | .* | *. | *..*) return 1 ;; *.*.*.*) ;; *) return 1 ;; esac
    old_ifs=$IFS
    IFS=.
    # shellcheck disable=SC2086 # splitting on dots is the point
    set -- $1
    IFS=$old_ifs
    [ $# -eq 4 ] || return 1
    for octet in "$@"; do
        is_dec "$octet" 255 || return 1
    done
}

# RFC 4291 text form: up to eight groups of 1-4 hex digits, one "::" at most, an IPv4 tail allowed.
# Zone ids ("%eth0") and brackets are refused: ipscan takes neither.
is_ipv6() {
    a=$1
    case $a in
        *[!0-9A-Fa-f:.]* | '' | *:::* | *::*::*) return 1 ;;
    esac
    case $a in
        *::*) compressed=1 ;;
        *) compressed=0 ;;
    esac
    # A single leading or trailing ':' is only valid as part of "::".
    case $a in
        :[!:]* | :) return 1 ;;
    esac
    case $a in
        *[!:]:) return 1 ;;
    esac
    groups=0
    tail=
    case $a in
        *.*)
            tail=${a##*:}
            is_ipv4 "$tail" || return 1
            a=${a%"$tail"}
            case $a in *::) ;; *:) a=${a%:} ;; esac
            groups=2
            ;;
    esac
    old_ifs=$IFS
    IFS=:
    # shellcheck disable=SC2086
    set -- $a
    IFS=$old_ifs
    for g in "$@"; do
        [ -z "$g" ] && continue
        case $g in ?????* | *.*) return 1 ;; esac
        groups=$((groups + 1))
    done
    if [ "$compressed" = 1 ]; then
        [ "$groups" -le 7 ]
    else
        [ "$groups" -eq 8 ]
    fi
}

# ADDR or ADDR/LEN. Sets FAMILY.
valid_addr() {
    addr=${1%/*}
    len=none
    case $1 in */*/*) return 1 ;; */*) len=${1#*/} ;; esac
    if is_ipv4 "$addr"; then
        FAMILY=4
        [ "$len" = none ] || { is_dec "$len" 32 && [ "$len" -ge 8 ]; }
    elif is_ipv6 "$addr"; then
        FAMILY=6
        [ "$len" = none ] || { is_dec "$len" 128 && [ "$len" -ge 32 ]; }
    else
        return 1
    fi
}

valid_ttl() {
    case $1 in
        '' | *[!0-9smh]*) return 1 ;;
        *[0-9] | *[0-9]s | *[0-9]m | *[0-9]h) ;;
        *) return 1 ;;
    esac
    case ${1%[smh]} in '' | *[!0-9]*) return 1 ;; esac
}

# --- JSON field extraction (see the header for why this is enough) ------------------------------

# First string value of KEY in the line: json_str LINE KEY
json_str() {
    printf '%s\n' "$1" | awk -v key="$2" '{
        n = index($0, "\"" key "\"")
        if (n == 0) exit
        rest = substr($0, n + length(key) + 2)
        if (!match(rest, /^[ \t]*:[ \t]*"/)) exit
        rest = substr(rest, RLENGTH + 1)
        if (!match(rest, /^[^"\\]*"/)) exit
        print substr(rest, 1, RLENGTH - 1)
    }'
}

# First number value of KEY: json_num LINE KEY
json_num() {
    printf '%s\n' "$1" | awk -v key="$2" '{
        n = index($0, "\"" key "\"")
        if (n == 0) exit
        rest = substr($0, n + length(key) + 2)
        if (!match(rest, /^[ \t]*:[ \t]*[0-9]+/)) exit
        rest = substr(rest, 1, RLENGTH)
        sub(/^[ \t]*:[ \t]*/, "", rest)
        print rest
    }'
}

# The strings of the "extra_args" array, one a line.
json_extra_args() {
    printf '%s\n' "$1" | awk '{
        n = index($0, "\"extra_args\"")
        if (n == 0) exit
        rest = substr($0, n + 12)
        if (!match(rest, /^[ \t]*:[ \t]*\[[^]]*\]/)) exit
        rest = substr(rest, 1, RLENGTH)
        sub(/^[^[]*\[/, "", rest)
        sub(/\]$/, "", rest)
        while (match(rest, /"[^"\\]*"/)) {
            print substr(rest, RSTART + 1, RLENGTH - 2)
            rest = substr(rest, RSTART + RLENGTH)
        }
    }'
}

# TTL from "--ttl D" / "--ttl=D" in the arguments given.
ttl_from_args() {
    want=0
    for arg in "$@"; do
        if [ "$want" = 1 ]; then
            printf '%s\n' "$arg"
            return
        fi
        case $arg in
            --ttl) want=1 ;;
            --ttl=*) printf '%s\n' "${arg#--ttl=}"; return ;;
        esac
    done
}

# --- the three protocols -----------------------------------------------------------------------

TTL=
case ${1:-} in
    add | delete)
        PROTOCOL=ossec
        COMMAND=$1
        SRCIP=${3:-}
        log "input: $*"
        # dash exits on a failed `shift 3`, so count first.
        if [ $# -ge 3 ]; then shift 3; else set --; fi
        TTL=$(ttl_from_args "$@")
        ;;
    '')
        PROTOCOL=wazuh
        IFS= read -r INPUT || [ -n "$INPUT" ] || die "no input on stdin"
        log "input: $INPUT"
        COMMAND=$(json_str "$INPUT" command)
        case $COMMAND in
            add | delete)
                SRCIP=$(json_str "$INPUT" srcip)
                # extra_args are config strings, one per array element: a newline-separated list.
                old_ifs=$IFS
                IFS='
'
                # shellcheck disable=SC2046
                set -- $(json_extra_args "$INPUT")
                IFS=$old_ifs
                TTL=$(ttl_from_args "$@")
                ;;
            enable | disable)
                PROTOCOL=wazuh5
                [ "$COMMAND" = enable ] && COMMAND=add || COMMAND=delete
                # "source":{"ip":"..."}: the first "ip" key after "source".
                SRCIP=$(json_str "${INPUT#*\"source\"}" ip)
                timeout=$(json_num "$INPUT" stateful_timeout)
                case $timeout in '' | 0) ;; *) TTL=${timeout}s ;; esac
                ;;
            *) die "invalid command \"$COMMAND\"" ;;
        esac
        ;;
    *) die "usage: $NAME add|delete USER SRCIP [ALERTID RULEID ...], or a Wazuh JSON message on stdin" ;;
esac

[ -n "$SRCIP" ] || die "$PROTOCOL $COMMAND: no source address in the alert"
valid_addr "$SRCIP" || die "$PROTOCOL $COMMAND: refusing invalid address \"$SRCIP\""

if [ "$COMMAND" = add ]; then
    [ -n "$TTL" ] || TTL=${IPSCAN_TTL:-$DEFAULT_TTL}
    valid_ttl "$TTL" || die "invalid TTL \"$TTL\" (want digits with an optional s, m or h)"
fi

# Wazuh 4.2+ stateful handshake: name the keys this response is about and let execd decide.
if [ "$PROTOCOL" = wazuh ] && [ "$COMMAND" = add ]; then
    keys='{"version":1,"origin":{"name":"'"$NAME"'","module":"active-response"},"command":"check_keys","parameters":{"keys":["'"$SRCIP"'"]}}'
    log "$keys"
    printf '%s\n' "$keys"
    IFS= read -r REPLY || [ -n "$REPLY" ] || die "no reply to check_keys"
    log "reply: $REPLY"
    case $(json_str "$REPLY" command) in
        continue) ;;
        abort) log "aborted: $SRCIP already has an active response"; exit 0 ;;
        *) die "invalid reply to check_keys" ;;
    esac
fi

# --- run ipscan ----------------------------------------------------------------------------------

if [ -z "${IPSCAN:-}" ]; then
    IPSCAN=$(command -v ipscan 2>/dev/null)
    for candidate in /usr/local/sbin/ipscan /usr/sbin/ipscan; do
        [ -n "$IPSCAN" ] && break
        [ -x "$candidate" ] && IPSCAN=$candidate
    done
    [ -n "$IPSCAN" ] || die "ipscan not found (set IPSCAN)"
fi

if [ "$COMMAND" = add ]; then
    set -- block add "$SRCIP" --ttl "$TTL"
else
    set -- block del "$SRCIP"
fi
log "$PROTOCOL: $IPSCAN $*"
out=$("$IPSCAN" "$@" 2>&1)
rc=$?
[ -n "$out" ] && log "ipscan: $out"
[ "$rc" -eq 0 ] || die "ipscan exited with status $rc"
log "ended"
exit 0
