// Uses <ip> from 00-patterns.yml and a library that the directory
// loader skips (its name starts with "_"), imported relatively.
local lib = import '_lib.libsonnet';
{
  start: [['echo', 'ssh is watched']],
  streams: {
    ssh: {
      cmd: ['journalctl', '-fu', 'sshd.service'],
      filters: {
        failedlogin: {
          regex: ['Failed password for .* from <ip>'],
          retry: 3,
          retryperiod: '6h',
          actions: lib.banFor('48h'),
        },
      },
    },
  },
}
