{
  patterns: { ip: { type: 'ip' } },
  regexes: {
    failedlogin: ['Failed password for .* from <ip>'],
    invaliduser: ['Invalid user .* from <ip>', 'authentication failure;.*rhost=<ip>'],
  },
  filter(regex):: {
    regex: regex,
    retry: 3,
    retryperiod: '6h',
    actions: {
      ban: { cmd: ['ban', '<ip>'] },
      unban: { cmd: ['unban', '<ip>'], after: '48h' },
    },
  },
}
