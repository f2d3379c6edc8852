// Errors in a Jsonnet configuration carry no line: the lines of the
// generated JSON mean nothing to its author.
{
  patterns: { ip: { type: 'ipv4' } },
  streams: {
    ssh: {
      cmd: ['journalctl'],
      filters: {
        failedlogin: {
          regex: ['from <iip>'],
          retry: 3,
          retryperoid: '6h',
          actions: { ban: { cmd: ['ban', '<ip>'] } },
        },
      },
    },
  },
}
