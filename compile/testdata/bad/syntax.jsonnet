{
  streams: {
    s: { cmd: ['c'] ,
  },
}
