// Package childproc starts child processes that the kernel stops when their parent dies,
// however it dies (a crash, a timeout, kill -9), so that no server is left behind holding
// its ports, its devices or its data directory.
package childproc

import (
	"os/exec"
	"runtime"
	"sync"
	"syscall"
)

// Start starts cmd with sig as its parent-death signal (Linux's PR_SET_PDEATHSIG), keeping
// whatever else cmd.SysProcAttr asks for.
//
// The parent-death signal fires when the THREAD that forked the child exits, not the process,
// and Go ends a thread when a goroutine exits while locked to it; a child forked from an
// arbitrary thread could therefore be signalled while its parent still runs. Start forks
// every child from one locked thread that lives as long as the process, so children get
// their signal exactly when the parent dies.
func Start(cmd *exec.Cmd, sig syscall.Signal) error {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
	startSpawner()
	req := request{cmd: cmd, err: make(chan error, 1)}
	requests <- req
	return <-req.err
}

// request asks the spawner thread to start a command.
type request struct {
	cmd *exec.Cmd
	err chan error
}

// requests feeds the spawner goroutine, started on first use.
var requests = make(chan request)

// startSpawner starts the goroutine that forks every child, on a thread of its own.
var startSpawner = sync.OnceFunc(func() {
	go func() { // owner: the package; runs until the process exits
		runtime.LockOSThread()
		for r := range requests {
			r.err <- r.cmd.Start()
		}
	}()
})
