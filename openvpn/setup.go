package openvpn

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/cellgate/cellgate/internal/atomicfile"
)

// Init sets up an OpenVPN server in c.Dir: CA, server certificate, tls-crypt key, management
// password (each kept when it exists, replaced with c.Force) and the derived files
// server.conf, relay.json and hook.env (written on every run; hook.env keeps the values c
// leaves empty). `openvpn --config <Dir>/server.conf` then starts the relay's server.
//
// A key or certificate Init cannot keep — half of a pair, a server certificate not signed by
// the CA or not naming c.PublicHost — is an error wrapping fs.ErrExist that names the file;
// nothing is replaced without c.Force.
func Init(c InitConfig) (*InitResult, error) {
	c.setDefaults()
	if err := c.check(); err != nil {
		return nil, fmt.Errorf("openvpn init: %w", err)
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return nil, fmt.Errorf("openvpn init: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("openvpn init: %w", err)
	}
	res := &InitResult{}
	now := time.Now()
	ca, err := setupCA(dir, c.Force, now, res)
	if err != nil {
		return nil, fmt.Errorf("openvpn init: %w", err)
	}
	if err := setupServerCert(dir, ca, c, now, res); err != nil {
		return nil, fmt.Errorf("openvpn init: %w", err)
	}
	if err := setupSecret(dir, tlsCryptFile, c.Force, res, newTLSCryptKey, func(b []byte) error {
		_, err := checkStaticKey(b)
		return err
	}); err != nil {
		return nil, fmt.Errorf("openvpn init: %w", err)
	}
	if err := setupSecret(dir, managementFile, c.Force, res, func() ([]byte, error) {
		t, err := newToken()
		return []byte(t + "\n"), err
	}, nil); err != nil {
		return nil, fmt.Errorf("openvpn init: %w", err)
	}
	if err := renderDerived(dir, c, res); err != nil {
		return nil, fmt.Errorf("openvpn init: %w", err)
	}
	if res.Server, err = LoadServer(dir); err != nil {
		return nil, fmt.Errorf("openvpn init: %w", err)
	}
	return res, nil
}

// setupCA keeps or creates ca.crt and ca.key and returns the CA.
func setupCA(dir string, force bool, now time.Time, res *InitResult) (issuer, error) {
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	if !force {
		certPEM, keyPEM, err := readPair(certPath, keyPath)
		if err != nil {
			return issuer{}, err
		}
		if certPEM != nil {
			ca, err := parseIssuer(certPEM, keyPEM)
			if err != nil {
				return issuer{}, fmt.Errorf("%s, %s: %w; give --force to replace them (every profile then needs to be downloaded again)", certPath, keyPath, err)
			}
			res.add(certPath, "kept")
			res.add(keyPath, "kept")
			return ca, nil
		}
	}
	certPEM, keyPEM, err := newCA(now)
	if err != nil {
		return issuer{}, err
	}
	if err := writeKeyPair(certPath, keyPath, certPEM, keyPEM, force, res); err != nil {
		return issuer{}, err
	}
	return parseIssuer(certPEM, keyPEM)
}

// setupServerCert keeps or issues server.crt and server.key.
func setupServerCert(dir string, ca issuer, c InitConfig, now time.Time, res *InitResult) error {
	certPath, keyPath := filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile)
	if !c.Force {
		certPEM, _, err := readPair(certPath, keyPath)
		if err != nil {
			return err
		}
		if certPEM != nil {
			cert, err := parseCert(certPEM)
			if err != nil {
				return fmt.Errorf("%s: %w", certPath, err)
			}
			if err := cert.CheckSignatureFrom(ca.cert); err != nil {
				return fmt.Errorf("%s is not signed by %s; remove %s and %s to issue a new one, or give --force to replace every key: %w",
					certPath, caCertFile, serverCertFile, serverKeyFile, fs.ErrExist)
			}
			if !certHasHost(cert, c.PublicHost) && c.RenewServerCert {
				certPEM, keyPEM, err := newServerCert(ca, c.PublicHost, now)
				if err != nil {
					return err
				}
				return writeKeyPair(certPath, keyPath, certPEM, keyPEM, true, res)
			}
			if !certHasHost(cert, c.PublicHost) {
				return fmt.Errorf("%s was issued for another host than %s; remove %s and %s to issue a new one (profiles keep working), or give --force to replace every key: %w",
					certPath, c.PublicHost, serverCertFile, serverKeyFile, fs.ErrExist)
			}
			res.add(certPath, "kept")
			res.add(keyPath, "kept")
			return nil
		}
	}
	certPEM, keyPEM, err := newServerCert(ca, c.PublicHost, now)
	if err != nil {
		return err
	}
	return writeKeyPair(certPath, keyPath, certPEM, keyPEM, c.Force, res)
}

// readPair reads a certificate and its key: both nil when neither exists, an error wrapping
// fs.ErrExist when only one does.
func readPair(certPath, keyPath string) (certPEM, keyPEM []byte, err error) {
	certPEM, certErr := readSmall(certPath)
	keyPEM, keyErr := readSmall(keyPath)
	certMissing, keyMissing := errors.Is(certErr, fs.ErrNotExist), errors.Is(keyErr, fs.ErrNotExist)
	switch {
	case certMissing && keyMissing:
		return nil, nil, nil
	case certMissing:
		return nil, nil, fmt.Errorf("%s exists without %s; give --force to replace it: %w", keyPath, filepath.Base(certPath), fs.ErrExist)
	case keyMissing:
		return nil, nil, fmt.Errorf("%s exists without %s; give --force to replace it: %w", certPath, filepath.Base(keyPath), fs.ErrExist)
	case certErr != nil:
		return nil, nil, certErr
	case keyErr != nil:
		return nil, nil, keyErr
	}
	return certPEM, keyPEM, nil
}

// writeKeyPair writes a new certificate (0644) and key (0600): replacing them with force,
// else creating them (neither exists, readPair made sure).
func writeKeyPair(certPath, keyPath string, certPEM, keyPEM []byte, force bool, res *InitResult) error {
	if err := writeNew(keyPath, keyPEM, 0o600, force, res); err != nil {
		return err
	}
	return writeNew(certPath, certPEM, 0o644, force, res)
}

// setupSecret keeps dir/name when it exists (and check, if any, accepts it) or writes a new
// one made by gen with mode 0600.
func setupSecret(dir, name string, force bool, res *InitResult, gen func() ([]byte, error), check func([]byte) error) error {
	path := filepath.Join(dir, name)
	if !force {
		data, err := readSmall(path)
		switch {
		case err == nil && check != nil:
			if err := check(data); err != nil {
				return fmt.Errorf("%s: %w; give --force to replace it", path, err)
			}
			fallthrough
		case err == nil:
			res.add(path, "kept")
			return nil
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	data, err := gen()
	if err != nil {
		return err
	}
	defer clear(data)
	return writeNew(path, data, 0o600, force, res)
}

// renderDerived writes server.conf, relay.json and hook.env.
func renderDerived(dir string, c InitConfig, res *InitResult) error {
	conf, err := renderServerConf(newServerConf(dir, c))
	if err != nil {
		return err
	}
	relay, err := relayJSON(c)
	if err != nil {
		return err
	}
	envPath := filepath.Join(dir, hookEnvFile)
	env, missing, err := hookEnv(envPath, c.InternalURL, c.InternalToken)
	if err != nil {
		return err
	}
	defer clear(env)
	res.HookEnvMissing = missing
	for _, f := range []struct {
		name string
		data []byte
		perm fs.FileMode
	}{{serverConfFile, conf, 0o644}, {relayFile, relay, 0o644}, {hookEnvFile, env, 0o600}} {
		path := filepath.Join(dir, f.name)
		if err := atomicfile.Replace(path, f.data, f.perm); err != nil {
			return err
		}
		res.add(path, "rendered")
	}
	return nil
}

func (r *InitResult) add(path, action string) {
	r.Files = append(r.Files, File{Path: path, Action: action})
}

// writeNew writes a key file: with replace atomically over an existing one ("replaced"),
// else creating it, refusing one that exists (fs.ErrExist) ("created").
func writeNew(path string, data []byte, perm fs.FileMode, replace bool, res *InitResult) error {
	if replace {
		_, statErr := os.Lstat(path)
		if err := atomicfile.Replace(path, data, perm); err != nil {
			return err
		}
		if statErr == nil {
			res.add(path, "replaced")
		} else {
			res.add(path, "created")
		}
		return nil
	}
	if err := atomicfile.Create(path, data, perm); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists; give --force to replace it: %w", path, err)
		}
		return err
	}
	res.add(path, "created")
	return nil
}
