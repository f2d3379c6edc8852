package stages

import (
	"os"
	"syscall"
)

// pipeSize is the capacity asked for a stream's pipe. Linux's default of
// 64 KiB makes a fast writer and the reader take turns every 64 KiB; 1 MiB
// (the unprivileged maximum, /proc/sys/fs/pipe-max-size) lets each run for
// longer, with fewer wake-ups and larger reads.
const pipeSize = 1 << 20

const fSetPipeSize = 1031 // F_SETPIPE_SZ

// growPipe asks for a larger pipe; failing is harmless (the default stays).
func growPipe(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSize, pipeSize)
	})
}
