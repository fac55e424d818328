package openvpn

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"time"
)

// Names and lifetimes of the relay's certificates. Clients pin the CA (inline in their
// profile) and the server's common name (verify-x509-name), never the server certificate
// itself, so a re-issued server certificate does not break a profile.
const (
	// CACommonName is the common name of the CA that init creates.
	CACommonName = "cellgate OpenVPN CA"
	// ServerCommonName is the server certificate's common name; profiles verify it.
	ServerCommonName = "cellgate-relay"

	caValidity     = 10 * 365 * 24 * time.Hour
	serverValidity = 5 * 365 * 24 * time.Hour
	// backdate covers clients whose clock is a little behind the relay's.
	backdate = time.Hour
)

// tls-crypt keys use OpenVPN's static key file format: 2048 bits as 16 lines of 32 hex digits.
const (
	staticKeyBegin = "-----BEGIN OpenVPN Static key V1-----"
	staticKeyEnd   = "-----END OpenVPN Static key V1-----"
	staticKeyBytes = 256
)

// issuer is a CA certificate with its private key, which signs the server certificate.
type issuer struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newCA creates a self-signed ECDSA P-256 CA valid for caValidity from now, and returns its
// certificate and PKCS #8 private key in PEM.
func newCA(now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: CACommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create CA certificate: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// newServerCert creates the server's ECDSA P-256 key and a certificate for it signed by ca:
// common name ServerCommonName, extended key usage server auth, host (a DNS name or an IP
// address) as its subject alternative name, valid for serverValidity from now.
func newServerCert(ca issuer, host string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate server key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: ServerCommonName},
		NotBefore:    now.Add(-backdate),
		NotAfter:     now.Add(serverValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	} else {
		tmpl.DNSNames = append(tmpl.DNSNames, host)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("create server certificate: %w", err)
	}
	keyPEM, err = marshalKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// certHasHost reports whether cert names host (a DNS name or an IP address) among its subject
// alternative names.
func certHasHost(cert *x509.Certificate, host string) bool {
	if ip, err := netip.ParseAddr(host); err == nil {
		for _, a := range cert.IPAddresses {
			if got, ok := netip.AddrFromSlice(a); ok && got.Unmap() == ip.Unmap() {
				return true
			}
		}
		return false
	}
	for _, n := range cert.DNSNames {
		if strings.EqualFold(n, host) {
			return true
		}
	}
	return false
}

// newSerial returns a random positive 128-bit certificate serial number.
func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func marshalKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseCert parses the first PEM certificate in data.
func parseCert(data []byte) (*x509.Certificate, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM certificate")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// parseIssuer parses a CA certificate and its PKCS #8 (or SEC 1) ECDSA key, both PEM, and
// checks that they belong together.
func parseIssuer(certPEM, keyPEM []byte) (issuer, error) {
	cert, err := parseCert(certPEM)
	if err != nil {
		return issuer{}, fmt.Errorf("CA certificate: %w", err)
	}
	if !cert.IsCA {
		return issuer{}, errors.New("CA certificate: not a CA")
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return issuer{}, errors.New("CA key: no PEM block")
	}
	var key *ecdsa.PrivateKey
	if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		key, _ = k.(*ecdsa.PrivateKey)
	} else if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		key = k
	}
	if key == nil {
		return issuer{}, errors.New("CA key: not an ECDSA private key")
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return issuer{}, errors.New("CA key does not belong to the CA certificate")
	}
	return issuer{cert: cert, key: key}, nil
}

// newTLSCryptKey returns 2048 random bits in OpenVPN's static key file format, as
// `openvpn --genkey tls-crypt` writes it.
func newTLSCryptKey() ([]byte, error) {
	raw := make([]byte, staticKeyBytes)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate tls-crypt key: %w", err)
	}
	var b strings.Builder
	b.WriteString("#\n# 2048 bit OpenVPN static key (tls-crypt), written by cellgate openvpn init\n#\n")
	b.WriteString(staticKeyBegin + "\n")
	for i := 0; i < len(raw); i += 16 {
		b.WriteString(hex.EncodeToString(raw[i:i+16]) + "\n")
	}
	b.WriteString(staticKeyEnd + "\n")
	clear(raw)
	return []byte(b.String()), nil
}

// checkStaticKey checks that data holds an OpenVPN static key of 2048 bits (comments before
// the BEGIN line are allowed) and returns the key block from BEGIN to END, which is what a
// profile inlines.
func checkStaticKey(data []byte) (string, error) {
	s := string(data)
	i := strings.Index(s, staticKeyBegin)
	j := strings.Index(s, staticKeyEnd)
	if i < 0 || j < i {
		return "", errors.New("not an OpenVPN static key: no BEGIN/END lines")
	}
	body := strings.Fields(s[i+len(staticKeyBegin) : j])
	raw, err := hex.DecodeString(strings.Join(body, ""))
	if err != nil || len(raw) != staticKeyBytes {
		return "", fmt.Errorf("not an OpenVPN static key: want %d hex-encoded bytes", staticKeyBytes)
	}
	clear(raw)
	return s[i:j+len(staticKeyEnd)] + "\n", nil
}

// newToken returns 256 random bits in URL-safe base64: the management password.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
