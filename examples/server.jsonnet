// A whole server in Jsonnet: helper functions keep each stream to a few
// lines. Bans go to an nftables set per family (see ssh-nftables.yml for the
// table these commands expect).
local nft(verb, ip, set) = ['nft', verb, 'element', 'inet', 'reaction', set, '{', ip, '}'];

// Ban now, unban after `time`, for both address families.
local banFor(time) = {
  ban4: { cmd: nft('add', '<ip>', 'ban4'), ipv4only: true },
  ban6: { cmd: nft('add', '<ip>', 'ban6'), ipv6only: true },
  unban4: { cmd: nft('delete', '<ip>', 'ban4'), after: time, ipv4only: true },
  unban6: { cmd: nft('delete', '<ip>', 'ban6'), after: time, ipv6only: true },
};

// A filter with the usual thresholds.
local filter(regexes, retry=3, period='6h', ban='48h') = {
  regex: regexes,
  retry: retry,
  retryperiod: period,
  actions: banFor(ban),
};

{
  patterns: {
    ip: { type: 'ip', ignore: ['127.0.0.1', '::1'], ipv6mask: 64 },
  },
  concurrency: 4,
  streams: {
    ssh: {
      cmd: ['journalctl', '-n0', '-fu', 'sshd.service'],
      filters: {
        failedlogin: filter([
          @'authentication failure;.*rhost=<ip>',
          @'Failed password for .* from <ip>',
          @'Invalid user .* from <ip>',
          @'banner exchange: Connection from <ip> port [0-9]*: invalid format',
        ]),
      },
    },
    nginx: {
      cmd: ['tail', '-F', '-n0', '/var/log/nginx/access.log'],
      filters: {
        scanners: filter([
          @'^<ip> \S+ \S+ \[[^]]*\] "[A-Z]+ [^"]*/(wp-login|xmlrpc)\.php',
          @'^<ip> \S+ \S+ \[[^]]*\] "[A-Z]+ [^"]*/\.env',
        ], retry=2, period='10m', ban='1d'),
      },
    },
    postfix: {
      cmd: ['journalctl', '-n0', '-fu', 'postfix@-.service'],
      filters: {
        saslfail: filter([
          @'warning: [^[]*\[<ip>\]: SASL (LOGIN|PLAIN) authentication failed',
        ], retry=5, period='1h', ban='12h'),
      },
    },
  },
}
