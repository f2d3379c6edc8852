{
  streams(n):: error 'streams: n must be a string, got ' + n,
}
