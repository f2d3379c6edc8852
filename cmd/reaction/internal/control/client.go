package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"syscall"
	"time"
)

// ErrNoDaemon is wrapped by Do's error when nothing listens on the socket.
var ErrNoDaemon = errors.New("no reaction daemon is listening")

// RemoteError is a request the daemon answered with an error: an unknown
// stream, an invalid value. Its message is the daemon's.
type RemoteError struct{ Message string }

func (e *RemoteError) Error() string { return e.Message }

// Do sends req to the daemon listening on path and returns its response.
// The error is ErrNoDaemon-wrapped when nothing listens, a *RemoteError
// when the daemon refused the request, and otherwise says what went wrong
// on the way. ctx bounds the whole exchange.
func Do(ctx context.Context, path string, req Request) (Response, error) {
	if req.Version == 0 {
		req.Version = Version
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return Response{}, dialError(path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("encoding the request: %w", err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return Response{}, exchangeError(ctx, path, "sending the request", err)
	}
	var resp Response
	if err := json.NewDecoder(io.LimitReader(conn, MaxResponseSize)).Decode(&resp); err != nil {
		if errors.Is(err, io.EOF) {
			return Response{}, fmt.Errorf("the daemon on %s closed the connection without answering (see its log)", path)
		}
		return Response{}, exchangeError(ctx, path, "reading the response", err)
	}
	if resp.Version != Version {
		return resp, fmt.Errorf("the daemon on %s speaks control protocol version %d, this reaction speaks version %d: use the reaction binary that matches the running daemon", path, resp.Version, Version)
	}
	if !resp.OK {
		msg := resp.Error
		if msg == "" {
			msg = "the daemon refused the request without saying why"
		}
		return resp, &RemoteError{Message: msg}
	}
	if resp.Snapshot != nil {
		resp.Snapshot.Normalize()
	}
	return resp, nil
}

func dialError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOTSOCK):
		return fmt.Errorf("%w on %s (is it running? is -s right?)", ErrNoDaemon, path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied on %s: the control socket is owner-only; run as the daemon's user", path)
	}
	return fmt.Errorf("connecting to the daemon on %s: %w", path, err)
}

func exchangeError(ctx context.Context, path, doing string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("the daemon on %s did not answer: %w", path, context.Cause(ctx))
	}
	var nerr net.Error
	if errors.As(err, &nerr) && nerr.Timeout() {
		return fmt.Errorf("the daemon on %s did not answer in time", path)
	}
	return fmt.Errorf("daemon on %s: %s: %w", path, doing, err)
}
