package main

import (
	"context"
	"errors"
	"time"

	"reaction/cmd/reaction/internal/control"
)

// socketOpt is the -s option of every command that talks to the daemon.
// Its default is control.DefaultSocket (a struct tag cannot name it).
type socketOpt struct {
	Socket string `short:"s" long:"socket" description:"control socket of the daemon" value-name:"PATH" default:"/run/reaction/reaction.sock"`
}

// stateFormatOpt is the -f option of show, flush and trigger.
type stateFormatOpt struct {
	Format string `short:"f" long:"format" description:"output format" choice:"text" choice:"yaml" choice:"json" default:"text"`
}

// controlTimeout bounds a whole exchange with the daemon, so that a stuck
// daemon does not hang the command.
const controlTimeout = time.Minute

// ask sends req to the daemon. Every failure is a runtime error (exit 1):
// no daemon, a refused request (the daemon's message), a broken exchange.
func (o socketOpt) ask(req control.Request) (control.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	resp, err := control.Do(ctx, o.Socket, req)
	if err != nil {
		return resp, runtimeError(err)
	}
	return resp, nil
}

// controlUsage turns an argument error of the control package into exit code 2.
func controlUsage(cmd string, err error) error {
	return usageErrorf("%s: %v", cmd, err)
}

var errNoSnapshot = errors.New("the daemon answered without a snapshot")
