local lib = import 'no-such-file.libsonnet';
lib
