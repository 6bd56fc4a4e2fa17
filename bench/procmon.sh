#!/usr/bin/env bash
# bench/procmon.sh — samples, every INTERVAL seconds until killed, the CPU
# and memory of each group of processes of a scale run, the kernel's socket
# figures and the host's load, as one CSV line per sample.
#
#   bash bench/procmon.sh OUT.csv INTERVAL group=pidfile …
#
# Each pidfile holds the pids of one group (one per line; re-read at every
# sample, so a group may grow). For each group the line has its summed CPU
# seconds (user + system, /proc/<pid>/stat) and RSS in MiB (VmRSS); then TCP
# sockets in use and the kernel's TCP memory (/proc/net/sockstat, pages of
# 4 KiB, shown in MiB), the host's used memory (MemTotal − MemAvailable),
# the 1-minute load and the host's CPU split (user, system, softirq, idle
# in seconds since boot, from /proc/stat).
set -uo pipefail
out=$1 interval=$2
shift 2
groups=() files=()
for g in "$@"; do groups+=("${g%%=*}"); files+=("${g#*=}"); done
hz=$(getconf CLK_TCK)

{
  printf 'unix'
  for g in "${groups[@]}"; do printf ',%s_cpu_s,%s_rss_mib' "$g" "$g"; done
  printf ',tcp_inuse,tcp_mem_mib,host_used_mib,load1,host_user_s,host_sys_s,host_softirq_s,host_idle_s\n'
} >"$out"

while :; do
  line=$(date +%s)
  for f in "${files[@]}"; do
    cpu=0 rss=0
    if [[ -s $f ]]; then
      while read -r pid; do
        [[ -r /proc/$pid/stat ]] || continue
        read -r -a st <"/proc/$pid/stat" 2>/dev/null || continue
        # fields 14 and 15 (utime, stime) counted past the "(comm)" field,
        # which has no spaces for these processes
        cpu=$((cpu + st[13] + st[14]))
        r=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null)
        rss=$((rss + ${r:-0}))
      done <"$f"
    fi
    line+=$(awk -v c="$cpu" -v hz="$hz" -v r="$rss" 'BEGIN {printf ",%.2f,%.1f", c / hz, r / 1024}')
  done
  tcp=$(awk '/^TCP:/ {for (i = 2; i < NF; i++) if ($i == "inuse") u = $(i + 1); else if ($i == "mem") m = $(i + 1); print u "," m * 4 / 1024}' /proc/net/sockstat)
  mem=$(awk '/^MemTotal:/ {t = $2} /^MemAvailable:/ {a = $2} END {printf "%.0f", (t - a) / 1024}' /proc/meminfo)
  load=$(cut -d' ' -f1 /proc/loadavg)
  host=$(awk -v hz="$hz" '/^cpu / {printf "%.1f,%.1f,%.1f,%.1f", ($2 + $3) / hz, $4 / hz, $8 / hz, $5 / hz}' /proc/stat)
  echo "$line,$tcp,$mem,$load,$host" >>"$out"
  sleep "$interval"
done
