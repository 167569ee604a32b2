package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/davgw/davgw/embedded"
)

// Pinned versions, the same as .ci/tools.sh: the cache paths below are the
// fallbacks when the DAVGW_* environment variables are not set.
const (
	versitygwVersion = "v1.8.0"
	seaweedfsVersion = "v0.0.0-20261109003541-7506e5f91cd6"
)

// errToolMissing marks a back end that cannot start because its binary is
// not installed: the tests skip it, except under CI=true where they fail.
var errToolMissing = errors.New("tool not installed")

// inCI reports whether missing tools must fail the run instead of skipping.
func inCI() bool { return os.Getenv("CI") == "true" }

// requireTool skips or fails (under CI=true) when err says a tool is missing;
// any other error fails the test.
func requireTool(tb testing.TB, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if errors.Is(err, errToolMissing) && !inCI() {
		tb.Skipf("%v (run `eval \"$(bash .ci/tools.sh)\"` to install it; with CI=true this is a failure)", err)
	}
	tb.Fatal(err)
}

// toolPath finds a pinned tool: the environment variable first, then the
// .ci/tools.sh cache, then (for Debian packages) $PATH.
func toolPath(envVar, tool, version string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		return "", fmt.Errorf("%w: %s=%s does not exist", errToolMissing, envVar, p)
	}
	if version != "" {
		p := filepath.Join(toolsCache(), tool+"-"+version, "bin", tool)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		return "", fmt.Errorf("%w: %s %s (set %s or build it into %s)", errToolMissing, tool, version, envVar, p)
	}
	p, err := exec.LookPath(tool)
	if err != nil {
		return "", fmt.Errorf("%w: %s not in $PATH (set %s)", errToolMissing, tool, envVar)
	}
	return p, nil
}

// toolsCache is the folder .ci/tools.sh builds tools into.
func toolsCache() string {
	if cache := os.Getenv("DAVGW_TOOLS_CACHE"); cache != "" {
		return cache
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "davgw-tools")
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// freePorts returns n distinct free loopback ports. All listeners are held
// open until the end so that the same port is not handed out twice.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// process is a child server started in its own process group, so that
// stopping it also stops anything it spawned.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{}
	err  error
}

// syncBuffer collects a child's output for error messages.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() > 1<<20 { // keep the start, where start-up errors are
		return len(p), nil
	}
	return b.buf.Write(p)
}

// all returns everything kept (the first MiB of the output).
func (b *syncBuffer) all() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

// startProcess runs bin with args in dir, in a new process group.
func startProcess(name, dir, bin string, env []string, args ...string) (*process, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p := &process{name: name, cmd: cmd, log: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM to the whole process group, then SIGKILL after grace.
func (p *process) stop(grace time.Duration) {
	pgid := p.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that outlived the leader still belong to the group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
}

// exited reports the child's exit, if it already ended.
func (p *process) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited early (%v); output:\n%s", p.name, p.err, p.log.String())
	default:
		return nil
	}
}

// waitHTTP polls url until it answers any HTTP status, the child dies or
// the timeout passes.
func waitHTTP(ctx context.Context, p *process, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		if err := p.exited(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer at %s within %v: %v; output:\n%s", p.name, url, timeout, err, p.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startVersityGW starts `versitygw posix` on a free loopback port.
func startVersityGW(ctx context.Context, dir string) (*s3Server, error) {
	bin, err := toolPath("DAVGW_VERSITYGW", "versitygw", versitygwVersion)
	if err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	const access, secret = "versityadmin", "versitysecret"
	var lastErr error
	for range 3 { // a free port can be taken between freePort and the bind
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		p, err := startProcess("versitygw", dir, bin, nil,
			"--port", addr, "--access", access, "--secret", secret, "--quiet", "posix", data)
		if err != nil {
			return nil, err
		}
		if err := waitHTTP(ctx, p, "http://"+addr+"/", 20*time.Second); err != nil {
			p.stop(2 * time.Second)
			lastErr = err
			continue
		}
		return &s3Server{
			endpoint: "http://" + addr, access: access, secret: secret,
			stop: func() { p.stop(5 * time.Second) },
		}, nil
	}
	return nil, lastErr
}

// weedPortFlags are every listening port `weed mini` opens; each gets a
// free loopback port so that nothing collides with other runs.
var weedPortFlags = []string{
	"-master.port", "-master.port.grpc",
	"-volume.port", "-volume.port.grpc",
	"-filer.port", "-filer.port.grpc",
	"-s3.port", "-s3.port.grpc",
	"-admin.port", "-admin.port.grpc",
}

// startSeaweedFS starts `weed mini` with every port given explicitly.
func startSeaweedFS(ctx context.Context, dir string) (*s3Server, error) {
	bin, err := toolPath("DAVGW_WEED", "weed", seaweedfsVersion)
	if err != nil {
		return nil, err
	}
	const access, secret = "weedadmin", "weedsecret"
	// A local KMS (keys made on demand) for SSE-KMS; WEED_S3_SSE_KEY below
	// for SSE-S3 (tests/objectopts_test.go).
	cfg := fmt.Sprintf(`{"identities":[{"name":"admin","credentials":[{"accessKey":%q,"secretKey":%q}],`+
		`"actions":["Admin","Read","List","Tagging","Write"]}],`+
		`"kms":{"default_provider":"local","providers":{"local":{"type":"local","enableOnDemandCreate":true}}}}`, access, secret)
	cfgPath := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	var lastErr error
	for range 3 {
		ports, err := freePorts(len(weedPortFlags))
		if err != nil {
			return nil, err
		}
		args := []string{"mini", "-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
			"-master.telemetry=false", "-s3.config=" + cfgPath, "-admin.ui=false",
			"-admin.port.legacy=0", "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false"}
		var s3Port int
		for i, flag := range weedPortFlags {
			args = append(args, fmt.Sprintf("%s=%d", flag, ports[i]))
			if flag == "-s3.port" {
				s3Port = ports[i]
			}
		}
		// weed puts its local sockets under os.TempDir(): keep them in dir.
		p, err := startProcess("weed mini", dir, bin, []string{"TMPDIR=" + dir, "WEED_S3_SSE_KEY=davgw-test-sse-s3"}, args...)
		if err != nil {
			return nil, err
		}
		endpoint := fmt.Sprintf("http://127.0.0.1:%d", s3Port)
		if err := waitHTTP(ctx, p, endpoint+"/", 60*time.Second); err != nil {
			p.stop(3 * time.Second)
			lastErr = err
			continue
		}
		return &s3Server{
			endpoint: endpoint, access: access, secret: secret,
			stop: func() {
				p.stop(10 * time.Second)
				for _, port := range ports { // sockets weed names after its ports
					matches, _ := filepath.Glob(fmt.Sprintf("/tmp/seaweedfs-*-%d.sock", port))
					for _, m := range matches {
						_ = os.Remove(m)
					}
				}
			},
		}, nil
	}
	return nil, lastErr
}

// startEmbedded starts the embedded default store (versitygw in process;
// only one per process) with its data under dir.
func startEmbedded(ctx context.Context, dir string) (*s3Server, error) {
	st, err := embedded.Start(ctx, filepath.Join(dir, "davgw-data"))
	if err != nil {
		return nil, err
	}
	return &s3Server{
		endpoint: st.Endpoint, access: st.AccessKeyID, secret: st.SecretAccessKey, bucket: st.Bucket,
		stop: func() { _ = st.Close() },
	}, nil
}
