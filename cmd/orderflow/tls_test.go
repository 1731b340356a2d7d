package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	binenc "encoding/binary"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/orderflow/orderflow/eventstore/eventstoretest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key as
// PEM files, and returns their paths and the certificate.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "orderflow test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, cert
}

// getTrusting GETs path from app over HTTPS on a new connection, trusting
// only the certificate trusted.
func getTrusting(app *App, trusted *x509.Certificate, path string) (*http.Response, error) {
	roots := x509.NewCertPool()
	roots.AddCert(trusted)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer c.CloseIdleConnections()
	return c.Get("https://" + app.HTTPAddr() + path)
}

// With --tls-cert and --tls-key the HTTP API serves HTTPS only (the client
// commands trust it with --server-ca), and a reload (SIGHUP) puts a
// renewed certificate in use for new connections.
func TestHTTPSWithReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, first := writeCert(t, dir, 1)
	cfg := newTestConfig(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	app := startApp(t, cfg)

	getTLS := func(trusted *x509.Certificate) (*http.Response, error) {
		return getTrusting(app, trusted, "/v1/statuses")
	}
	resp, err := getTLS(first)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("over HTTPS: %d, %v", resp.StatusCode, resp.TLS)
	}
	if code, body := get(t, "http://"+app.HTTPAddr()+"/readyz"); code != http.StatusBadRequest || !strings.Contains(body, "HTTPS") {
		t.Fatalf("plain HTTP: %d %s", code, body)
	}
	// The client commands check the certificate against --server-ca.
	server := "https://" + app.HTTPAddr()
	if code, _, errOut := runMain(t, "order", "show", "--server", server, "--server-ca", certFile, "nope"); code == 0 || !strings.Contains(errOut, "no order") {
		t.Fatalf("order show over HTTPS with --server-ca: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runMain(t, "order", "show", "--server", server, "nope"); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("order show over HTTPS without --server-ca: exit %d: %s", code, errOut)
	}

	_, _, renewed := writeCert(t, dir, 2) // the same files, a new certificate
	if err := app.Reload(); err != nil {
		t.Fatal(err)
	}
	if resp, err = getTLS(renewed); err != nil {
		t.Fatalf("with the renewed certificate: %v", err)
	}
	resp.Body.Close()
	if _, err := getTLS(first); err == nil {
		t.Fatal("the old certificate is still served after the reload")
	}

	// A key that does not match leaves the certificate in use.
	if err := os.WriteFile(keyFile, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := app.Reload(); err == nil || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("reload with a broken key: %v", err)
	}
	if resp, err = getTLS(renewed); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
	resp.Body.Close()

	cfg = newTestConfig(t)
	cfg.TLSCert = certFile
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("--tls-cert without --tls-key: %v", err)
	}
}

// Over HTTPS the API speaks HTTP/2, and tells each client it may carry
// at most MaxStreams requests at once on a connection (the
// server's SETTINGS_MAX_CONCURRENT_STREAMS), not net/http's 250: each is
// a handler at work, and 20 connections carried 5,000 requests with
// unfinished bodies.
func TestHTTP2StreamsPerConnection(t *testing.T) {
	t.Parallel()
	certFile, keyFile, cert := writeCert(t, t.TempDir(), 1)
	cfg := newTestConfig(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	app := startApp(t, cfg)
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	conn, err := tls.Dial("tcp", app.HTTPAddr(), &tls.Config{RootCAs: roots, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(eventstoretest.Patience(10 * time.Second)))
	if p := conn.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	// The client preface and an empty SETTINGS frame; the server's first
	// frame is its SETTINGS (RFC 9113, 3.4).
	if _, err := conn.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")); err != nil {
		t.Fatal(err)
	}
	var head [9]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		t.Fatal(err)
	}
	n := int(head[0])<<16 | int(head[1])<<8 | int(head[2])
	if head[3] != 0x4 || n%6 != 0 {
		t.Fatalf("the server's first frame: type %d, %d bytes; want SETTINGS", head[3], n)
	}
	settings := make([]byte, n)
	if _, err := io.ReadFull(conn, settings); err != nil {
		t.Fatal(err)
	}
	streams := -1
	for i := 0; i < n; i += 6 {
		if id := binenc.BigEndian.Uint16(settings[i:]); id == 0x3 { // SETTINGS_MAX_CONCURRENT_STREAMS
			streams = int(binenc.BigEndian.Uint32(settings[i+2:]))
		}
	}
	if streams != MaxStreams {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS %d, want %d", streams, MaxStreams)
	}
}

// startHTTPSApp starts an App serving HTTPS with a self-signed
// certificate and at most maxConnections connections, and returns it, the
// certificate's file and a pool that trusts it.
func startHTTPSApp(t *testing.T, maxConnections int) (app *App, certFile string, roots *x509.CertPool) {
	t.Helper()
	certFile, keyFile, cert := writeCert(t, t.TempDir(), 1)
	cfg := newTestConfig(t)
	cfg.TLSCert, cfg.TLSKey = certFile, keyFile
	cfg.MaxConnections = maxConnections
	roots = x509.NewCertPool()
	roots.AddCert(cert)
	return startApp(t, cfg), certFile, roots
}

// A client command keeps its connections to the server between calls:
// order migrate over HTTPS moves 40 orders, 4 at a time, through a
// server that holds 6 connections open. Before, each call made an HTTP
// transport of its own (with --server-ca) and held its connection until
// the server's idle timeout: the server was soon full, the next call
// waited to be accepted, and the command failed after 30 s.
func TestClientCommandsKeepTheirConnections(t *testing.T) {
	t.Parallel()
	app, certFile, roots := startHTTPSApp(t, 6)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 1}
	t.Cleanup(tr.CloseIdleConnections)
	c := &httpClient{t: t, base: "https://" + app.HTTPAddr(), hc: &http.Client{Transport: tr}}
	_, production, _ := seedWorkedExample(t, c)
	const orders = 40
	for i := range orders {
		id := fmt.Sprintf("m-%d", i)
		c.must(201, "POST", "/v1/orders", map[string]any{"id": id, "order_type_id": "wash_fold_delivery"})
		for _, tr := range workedTriggers[:2] {
			c.must(200, "POST", "/v1/orders/"+id+"/triggers", map[string]any{"trigger": tr})
		}
	}
	latest := c.must(200, "PATCH", "/v1/workflows/"+production, map[string]any{"name": "Laundry Production"})["version"]
	code, out, errOut := runMain(t, "order", "migrate", "--server", "https://"+app.HTTPAddr(), "--server-ca", certFile,
		"--workflow", production, "--parallel", "4")
	if code != 0 || out != fmt.Sprintf("migrated %d of %d orders of workflow %s to version %v\n", orders, orders, production, latest) {
		t.Fatalf("migrate over HTTPS: exit %d: %q %q", code, out, errOut)
	}
	for i := range orders {
		o := c.must(200, "GET", fmt.Sprintf("/v1/orders/m-%d", i), nil)
		if o["position"].(map[string]any)["workflow_version"] != latest {
			t.Fatalf("m-%d not migrated: %v", i, o)
		}
	}
}

// Over HTTPS too, HTTP/1.1 and HTTP/2 alike, idle connections make room
// for new clients at --max-connections (TestIdleConnectionsMakeRoom).
func TestIdleConnectionsMakeRoomOverHTTPS(t *testing.T) {
	t.Parallel()
	const maxConnections = 2
	app, _, roots := startHTTPSApp(t, maxConnections)
	for i := range 6 {
		h2 := i%2 == 1
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, ForceAttemptHTTP2: h2}
		resp, err := getLeavingIdle(t, tr, "https://"+app.HTTPAddr()+"/healthz")
		if err != nil {
			t.Fatalf("client %d of 6 (HTTP/2 %v), with %d connections allowed: %v", i+1, h2, maxConnections, err)
		}
		if want := map[bool]int{false: 1, true: 2}[h2]; resp.ProtoMajor != want {
			t.Fatalf("client %d: HTTP/%d, want HTTP/%d", i+1, resp.ProtoMajor, want)
		}
	}
}
