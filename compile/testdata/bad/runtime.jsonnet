local lib = import '_lib.libsonnet';
{
  streams: lib.streams(3),
}
