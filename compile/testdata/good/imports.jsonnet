// Imports are resolved relative to this file.
local common = import '_common.libsonnet';
{
  patterns: common.patterns,
  streams: {
    ssh: {
      cmd: ['journalctl', '-fu', 'sshd.service'],
      filters: {
        [name]: common.filter(common.regexes[name])
        for name in std.objectFields(common.regexes)
      },
    },
  },
}
