package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"syscall"

	"github.com/cellgate/cellgate/openvpn"
)

// exitCode is an error that makes cellgate exit with that status and print nothing more.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// deferredAuth is the exit status that tells OpenVPN an auth-user-pass-verify script deferred
// its decision to the auth control file.
const deferredAuth = exitCode(2)

const ovpnHookUsage = `usage: cellgate ovpn-hook auth <via-file> | connect | disconnect

Run by OpenVPN (see the server.conf of cellgate openvpn init), never by hand:
  auth        auth-user-pass-verify via-file, deferred: exits 2 at once; a detached child asks
              the API and writes auth_control_file (and auth_failed_reason_file)
  connect     client-connect: has the API route the client through its connection's device
  disconnect  client-disconnect: has the API remove the route
The URL of the API's internal listener and the internal token come from $CELLGATE_HOOK_ENV's
file or from $CELLGATE_INTERNAL_URL and $CELLGATE_INTERNAL_TOKEN.`

func runOVPNHook(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, ovpnHookUsage)
		if len(args) == 0 {
			return errors.New("missing hook name")
		}
		return nil
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("hook", args[0])
	api, err := openvpn.LoadHookAPI(os.Getenv)
	if err != nil {
		if args[0] == "auth" {
			// Still answer the client, with a reason, rather than leave it hanging.
			writeAuthFailure(log)
		}
		return err
	}
	switch args[0] {
	case "auth":
		return hookAuth(args[1:], log)
	case "auth-child":
		return hookAuthChild(ctx, api, log)
	case "connect":
		ctx, cancel := context.WithTimeout(ctx, openvpn.AuthBudget)
		defer cancel()
		req := openvpn.ConnectFromEnv(os.Getenv)
		if err := api.Connect(ctx, req); err != nil {
			return fmt.Errorf("client %s (%s) refused: %w", req.CommonName, req.PoolIP, err)
		}
		log.Info("client routed", "common_name", req.CommonName, "pool_ip", req.PoolIP)
		return nil
	case "disconnect":
		ctx, cancel := context.WithTimeout(ctx, openvpn.AuthBudget)
		defer cancel()
		req := openvpn.DisconnectFromEnv(os.Getenv)
		log.Info("client left", "common_name", req.CommonName, "pool_ip", req.PoolIP,
			"openvpn_bytes_received", req.BytesReceived, "openvpn_bytes_sent", req.BytesSent)
		return api.Disconnect(ctx, req)
	}
	return fmt.Errorf("unknown hook %q\n%s", args[0], ovpnHookUsage)
}

// hookAuth reads the credentials (OpenVPN removes the via-file once the script returns),
// hands them to a detached child through a pipe — never argv or the environment, which other
// users can read in /proc — and exits 2: the decision is deferred, OpenVPN keeps serving.
func hookAuth(args []string, log *slog.Logger) error {
	if len(args) == 0 {
		writeAuthFailure(log)
		return errors.New("auth: the via-file argument is missing (auth-user-pass-verify … via-file)")
	}
	user, pass, err := openvpn.ReadViaFile(args[len(args)-1])
	if err != nil {
		writeAuthFailure(log)
		return err
	}
	if os.Getenv("auth_control_file") == "" {
		return errors.New("auth: no auth_control_file in the environment: OpenVPN 2.6 with deferred auth is required")
	}
	exe, err := os.Executable()
	if err != nil {
		writeAuthFailure(log)
		return err
	}
	req, _ := json.Marshal(openvpn.AuthRequest{Username: user, Password: pass, UntrustedIP: openvpn.UntrustedIP(os.Getenv)})
	child := exec.Command(exe, "ovpn-hook", "auth-child")
	child.Env = os.Environ()
	child.Stderr = os.Stderr
	child.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // outlives this process
	in, err := child.StdinPipe()
	if err == nil {
		err = child.Start()
	}
	if err != nil {
		writeAuthFailure(log)
		return fmt.Errorf("auth: start the deferred check: %w", err)
	}
	_, werr := in.Write(req)
	in.Close()
	child.Process.Release()
	if werr != nil {
		writeAuthFailure(log)
		return fmt.Errorf("auth: hand the credentials to the deferred check: %w", werr)
	}
	return deferredAuth
}

// hookAuthChild is the deferred half: it asks the API (within openvpn.AuthBudget) and writes
// the verdict.
func hookAuthChild(ctx context.Context, api openvpn.HookAPI, log *slog.Logger) error {
	var req openvpn.AuthRequest
	if err := json.NewDecoder(io.LimitReader(os.Stdin, 64<<10)).Decode(&req); err != nil {
		writeAuthFailure(log)
		return fmt.Errorf("auth: read the credentials: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, openvpn.AuthBudget)
	defer cancel()
	res := api.Authenticate(ctx, req)
	if err := openvpn.WriteAuthResult(os.Getenv("auth_control_file"), os.Getenv("auth_failed_reason_file"), res); err != nil {
		return err
	}
	if res.Allow {
		log.Info("authenticated", "username", req.Username, "ip", req.UntrustedIP)
	} else {
		log.Info("refused", "username", req.Username, "ip", req.UntrustedIP, "reason", res.Reason)
	}
	return nil
}

// writeAuthFailure refuses the client with a TEMP reason when the hook itself cannot work.
func writeAuthFailure(log *slog.Logger) {
	control := os.Getenv("auth_control_file")
	if control == "" {
		return
	}
	res := openvpn.AuthResult{Reason: openvpn.ReasonAPIUnavailable}
	if err := openvpn.WriteAuthResult(control, os.Getenv("auth_failed_reason_file"), res); err != nil {
		log.Error("write the refusal", "err", err)
	}
}
