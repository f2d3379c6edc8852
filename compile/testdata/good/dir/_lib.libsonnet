{
  banFor(time):: {
    ban: { cmd: ['nft', 'add', 'element', 'inet', 'reaction', 'bans', '{ <ip> }'] },
    unban: { cmd: ['nft', 'delete', 'element', 'inet', 'reaction', 'bans', '{ <ip> }'], after: time },
  },
}
