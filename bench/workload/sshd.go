package workload

import "strconv"

// sshdPrefix writes "<timestamp> host prog[pid]: " (no "[pid]" when pid < 0).
func (g *gen) sshdPrefix(b []byte, prog string, pid int) []byte {
	if g.style == Journal {
		b = append(b, g.clk.iso...)
	} else {
		b = append(b, g.clk.syslog...)
	}
	b = append(b, " host "...)
	b = append(b, prog...)
	if pid >= 0 {
		b = append(b, '[')
		b = strconv.AppendInt(b, int64(pid), 10)
		b = append(b, ']')
	}
	return append(b, ": "...)
}

func (g *gen) pid() int { return 1000 + g.r.IntN(98000) }

// Attack line templates; every one is matched by exactly one of
// SSHDRegexes (the first matching one counts).
const (
	aFailedRoot    = iota // Failed password for root from IP port N ssh2
	aFailedInvalid        // Failed password for invalid user X from IP port N ssh2
	aInvalidUser          // Invalid user X from IP port N
	aPAMUser              // pam_unix(sshd:auth): authentication failure; ... rhost=IP  user=root
	aPAMNoUser            // the same without user= (unknown user)
	aBanner               // banner exchange: Connection from IP port N: invalid format
	aRepeated             // message repeated 2 times: [ Failed password for root from IP port N ssh2]
)

// sshdAttackMix gives, per attacker behavior, the templates to draw from
// (uniformly; repeats weight them).
var sshdAttackMix = [nBehaviors][]uint8{
	bruteRoot: {aFailedRoot, aFailedRoot, aFailedRoot, aFailedRoot, aPAMUser, aPAMUser, aPAMUser,
		aRepeated, aFailedInvalid, aInvalidUser},
	dictionary: {aInvalidUser, aInvalidUser, aInvalidUser, aInvalidUser, aFailedInvalid, aFailedInvalid,
		aFailedInvalid, aPAMNoUser, aPAMNoUser, aFailedRoot},
	scanner: {aBanner, aBanner, aBanner, aBanner, aBanner, aBanner, aBanner, aInvalidUser, aInvalidUser,
		aFailedRoot},
}

// decoyOneIn: one FailedInvalid/InvalidUser line in decoyOneIn has a user
// name that itself reads "X from <addr> port 22".
const decoyOneIn = 32

func (g *gen) sshdAttack(b []byte, idx int) []byte {
	t := pick(g, sshdAttackMix[g.pool.behavior[idx]][:])
	if t == aRepeated && g.style == Journal { // rsyslog-only line
		t = aFailedRoot
	}
	b = g.sshdPrefix(b, "sshd", g.pid())
	switch t {
	case aFailedRoot:
		b = append(b, "Failed password for root from "...)
	case aRepeated:
		b = append(b, "message repeated 2 times: [ Failed password for root from "...)
	case aFailedInvalid:
		b = append(b, "Failed password for invalid user "...)
		b = g.attackUser(b)
		b = append(b, " from "...)
	case aInvalidUser:
		b = append(b, "Invalid user "...)
		b = g.attackUser(b)
		b = append(b, " from "...)
	case aPAMUser, aPAMNoUser:
		b = append(b, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost="...)
		b = g.appendAttacker(b, idx)
		if t == aPAMUser {
			b = append(b, "  user=root"...)
		}
		return b
	case aBanner:
		b = append(b, "banner exchange: Connection from "...)
		b = g.appendAttacker(b, idx)
		b = append(b, " port "...)
		b = g.port(b)
		return append(b, ": invalid format"...)
	}
	b = g.appendAttacker(b, idx)
	b = append(b, " port "...)
	b = g.port(b)
	switch t {
	case aFailedRoot, aFailedInvalid:
		b = append(b, " ssh2"...)
	case aRepeated:
		b = append(b, " ssh2]"...)
	}
	return b
}

// attackUser writes a guessed user name, sometimes a decoy one that
// contains "from <address> port 22": the address a greedy `.* from <ip>`
// captures is still the real one, written last.
func (g *gen) attackUser(b []byte) []byte {
	b = append(b, pick(g, attackUsers)...)
	if g.r.IntN(decoyOneIn) != 0 {
		return b
	}
	b = append(b, " from "...)
	if g.r.IntN(5) == 0 { // a real attacker's address, not credited here
		b = g.pool.addr[g.anyAttacker()].AppendTo(b)
	} else {
		b = append(b, pick(g, decoyAddrs)...)
	}
	return append(b, " port 22"...)
}

// Benign line templates: none is matched by SSHDRegexes.
const (
	// A legitimate user's session.
	bAcceptedKey = iota
	bAcceptedPassword
	bSessionOpened
	bSessionClosed
	bReceivedDisconnectUser
	bDisconnectedUser
	bLogindNew
	bLogindRemoved
	bClosedBenign
	bSudo
	bSudoAuthFailure // PAM authentication failure with an empty rhost
	bCronOpened
	bCronCmd
	bCronClosed
	// An attacker's address in a line no reference regex matches.
	bClosedPreauth
	bDisconnectedInvalid
	bClosedInvalid
	bReceivedDisconnectBye
	bResetPreauth
	bBannerNoVersion
	bUnableToNegotiate
	bPAMMoreFailures // "authentication failures;" (plural) does not match
	bCheckPass
	bFailedNone
	bFailedPublickey
	bMaxAuthTries
	bTooManyFailures
	bClosedAuthenticating
	bKexClosed
	bTimeoutBeforeAuth
)

var sshdBenignMix = []uint8{
	bAcceptedKey, bAcceptedKey, bAcceptedPassword, bSessionOpened, bSessionOpened, bSessionClosed,
	bSessionClosed, bReceivedDisconnectUser, bDisconnectedUser, bLogindNew, bLogindRemoved,
	bClosedBenign, bSudo, bSudoAuthFailure, bCronOpened, bCronOpened, bCronCmd, bCronCmd,
	bCronClosed, bCronClosed,
	bClosedPreauth, bClosedPreauth, bClosedPreauth, bDisconnectedInvalid, bDisconnectedInvalid,
	bClosedInvalid, bReceivedDisconnectBye, bReceivedDisconnectBye, bResetPreauth, bBannerNoVersion,
	bUnableToNegotiate, bPAMMoreFailures, bCheckPass, bFailedNone, bFailedPublickey, bMaxAuthTries,
	bTooManyFailures, bClosedAuthenticating, bKexClosed, bTimeoutBeforeAuth,
}

var cronCommands = []string{
	"   cd / && run-parts --report /etc/cron.hourly",
	"command -v debian-sa1 > /dev/null && debian-sa1 1 1",
	"[ -x /usr/lib/php/sessionclean ] && if [ ! -d /run/systemd/system ]; then /usr/lib/php/sessionclean; fi",
	"/usr/local/bin/backup.sh >/dev/null 2>&1",
}

var sudoCommands = []string{
	"/usr/bin/systemctl restart nginx",
	"/usr/bin/apt-get upgrade -y",
	"/usr/bin/journalctl -fu sshd.service",
	"/usr/sbin/nft list ruleset",
}

func (g *gen) sshdBenign(b []byte) []byte {
	t := pick(g, sshdBenignMix)
	u := &benignUsers[g.r.IntN(len(benignUsers))]
	switch t {
	case bLogindNew, bLogindRemoved:
		b = g.sshdPrefix(b, "systemd-logind", 612)
		if t == bLogindRemoved {
			b = append(b, "Removed session "...)
			b = strconv.AppendInt(b, int64(1+g.r.IntN(5000)), 10)
			return append(b, '.')
		}
		b = append(b, "New session "...)
		b = strconv.AppendInt(b, int64(1+g.r.IntN(5000)), 10)
		b = append(b, " of user "...)
		b = append(b, u.name...)
		return append(b, '.')
	case bSudo, bSudoAuthFailure:
		b = g.sshdPrefix(b, "sudo", -1)
		if t == bSudo {
			b = append(b, "   "...)
			b = append(b, u.name...)
			b = append(b, " : TTY=pts/"...)
			b = strconv.AppendInt(b, int64(g.r.IntN(4)), 10)
			b = append(b, " ; PWD=/home/"...)
			b = append(b, u.name...)
			b = append(b, " ; USER=root ; COMMAND="...)
			return append(b, pick(g, sudoCommands)...)
		}
		b = append(b, "pam_unix(sudo:auth): authentication failure; logname="...)
		b = append(b, u.name...)
		b = append(b, " uid=1000 euid=0 tty=/dev/pts/0 ruser="...)
		b = append(b, u.name...)
		b = append(b, " rhost=  user="...)
		return append(b, u.name...)
	case bCronOpened, bCronCmd, bCronClosed:
		b = g.sshdPrefix(b, "CRON", g.pid())
		switch t {
		case bCronOpened:
			return append(b, "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)"...)
		case bCronClosed:
			return append(b, "pam_unix(cron:session): session closed for user root"...)
		}
		b = append(b, "(root) CMD ("...)
		b = append(b, pick(g, cronCommands)...)
		return append(b, ')')
	}

	b = g.sshdPrefix(b, "sshd", g.pid())
	switch t {
	case bAcceptedKey, bAcceptedPassword:
		if t == bAcceptedKey {
			b = append(b, "Accepted publickey for "...)
		} else {
			b = append(b, "Accepted password for "...)
		}
		b = append(b, u.name...)
		b = append(b, " from "...)
		b = append(b, u.addr...)
		b = append(b, " port "...)
		b = g.port(b)
		b = append(b, " ssh2"...)
		if t == bAcceptedKey {
			b = append(b, ": ED25519 "...)
			b = append(b, u.fp...)
		}
		return b
	case bSessionOpened:
		b = append(b, "pam_unix(sshd:session): session opened for user "...)
		b = append(b, u.name...)
		b = append(b, "(uid=1000) by (uid=0)"...)
		return b
	case bSessionClosed:
		b = append(b, "pam_unix(sshd:session): session closed for user "...)
		return append(b, u.name...)
	case bReceivedDisconnectUser:
		b = append(b, "Received disconnect from "...)
		b = append(b, u.addr...)
		b = append(b, " port "...)
		b = g.port(b)
		return append(b, ":11: disconnected by user"...)
	case bDisconnectedUser:
		b = append(b, "Disconnected from user "...)
		b = append(b, u.name...)
		b = append(b, ' ')
		b = append(b, u.addr...)
		b = append(b, " port "...)
		return g.port(b)
	case bClosedBenign:
		b = append(b, "Connection closed by "...)
		b = append(b, u.addr...)
		b = append(b, " port "...)
		b = g.port(b)
		return append(b, " [preauth]"...)
	case bCheckPass:
		return append(b, "pam_unix(sshd:auth): check pass; user unknown"...)
	case bKexClosed:
		return append(b, "error: kex_exchange_identification: Connection closed by remote host"...)
	}

	// An attacker's address in a non-matching context.
	idx := g.anyAttacker()
	switch t {
	case bClosedPreauth, bResetPreauth, bTimeoutBeforeAuth, bReceivedDisconnectBye, bUnableToNegotiate:
		switch t {
		case bClosedPreauth:
			b = append(b, "Connection closed by "...)
		case bResetPreauth:
			b = append(b, "Connection reset by "...)
		case bTimeoutBeforeAuth:
			b = append(b, "fatal: Timeout before authentication for "...)
		case bReceivedDisconnectBye:
			b = append(b, "Received disconnect from "...)
		case bUnableToNegotiate:
			b = append(b, "Unable to negotiate with "...)
		}
		b = g.appendAttacker(b, idx)
		b = append(b, " port "...)
		b = g.port(b)
		switch t {
		case bClosedPreauth, bResetPreauth:
			b = append(b, " [preauth]"...)
		case bReceivedDisconnectBye:
			b = append(b, ":11: Bye Bye [preauth]"...)
		case bUnableToNegotiate:
			b = append(b, ": no matching key exchange method found. Their offer: diffie-hellman-group1-sha1,diffie-hellman-group14-sha1 [preauth]"...)
		}
		return b
	case bDisconnectedInvalid, bClosedInvalid, bFailedNone:
		switch t {
		case bDisconnectedInvalid:
			b = append(b, "Disconnected from invalid user "...)
		case bClosedInvalid:
			b = append(b, "Connection closed by invalid user "...)
		case bFailedNone:
			b = append(b, "Failed none for invalid user "...)
		}
		b = append(b, pick(g, attackUsers)...)
		if t == bFailedNone {
			b = append(b, " from "...)
		} else {
			b = append(b, ' ')
		}
		b = g.appendAttacker(b, idx)
		b = append(b, " port "...)
		b = g.port(b)
		if t == bFailedNone {
			return append(b, " ssh2"...)
		}
		return append(b, " [preauth]"...)
	case bBannerNoVersion:
		b = append(b, "banner exchange: Connection from "...)
		b = g.appendAttacker(b, idx)
		b = append(b, " port "...)
		b = g.port(b)
		return append(b, ": could not read protocol version"...)
	case bPAMMoreFailures:
		b = append(b, "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost="...)
		b = g.appendAttacker(b, idx)
		return append(b, "  user=root"...)
	case bFailedPublickey:
		b = append(b, "Failed publickey for root from "...)
		b = g.appendAttacker(b, idx)
		b = append(b, " port "...)
		b = g.port(b)
		return append(b, " ssh2: RSA SHA256:0bZ9mQ1xW3kP5sR7tV2yN4hJ6dF8gL0cA1eB3iU5oXq"...)
	case bMaxAuthTries:
		b = append(b, "error: maximum authentication attempts exceeded for root from "...)
		b = g.appendAttacker(b, idx)
		b = append(b, " port "...)
		b = g.port(b)
		return append(b, " ssh2 [preauth]"...)
	case bTooManyFailures, bClosedAuthenticating:
		if t == bTooManyFailures {
			b = append(b, "Disconnecting authenticating user root "...)
		} else {
			b = append(b, "Connection closed by authenticating user root "...)
		}
		b = g.appendAttacker(b, idx)
		b = append(b, " port "...)
		b = g.port(b)
		if t == bTooManyFailures {
			return append(b, ": Too many authentication failures [preauth]"...)
		}
		return append(b, " [preauth]"...)
	}
	panic("workload: unhandled sshd template " + strconv.Itoa(int(t)))
}
