#!/bin/sh
# Prints sshd-like lines: a few benign logins and three attackers, one of
# them over IPv6, one with a decoy address in its user name. reaction reads
# them as it would read `journalctl -fu sshd`.
line() { printf '%s host sshd[%d]: %s\n' "$(date '+%b %d %H:%M:%S')" "$$" "$1"; sleep "${DEMO_PACE:-0.3}"; }
line 'Accepted publickey for alice from 192.0.2.10 port 50122 ssh2: ED25519 SHA256:abc'
for round in 1 2 3; do
	line "Failed password for root from 203.0.113.7 port 4${round}022 ssh2"
	line "Invalid user admin from 2001:db8::bad port 5${round}000"
	line "Failed password for invalid user oracle from 10.9.8.7 port 22 from 198.51.100.23 port 6${round}001 ssh2"
	line 'Accepted password for bob from 192.0.2.11 port 40000 ssh2'
done
line 'Failed password for root from 192.0.2.99 port 4000 ssh2'
sleep "${DEMO_LINGER:-4}"
