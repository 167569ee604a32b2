package tests

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// systemdUnit is the shipped unit file; its ExecStart names davgw where
// the header comment installs it.
const (
	systemdUnit    = "deploy/systemd/davgw.service"
	systemdUnitBin = "/usr/local/bin/davgw"
)

// TestSystemdUnit checks deploy/systemd/davgw.service without a running
// systemd (this machine has none as PID 1): `systemd-analyze verify`
// accepts it with no warning at all (an unknown or misspelt directive is
// only a warning there, so any output fails); `systemd-analyze security
// --offline` rates its sandboxing at most 2.0 ("OK"); and its ExecStart,
// with %d (the credentials directory) filled in the way systemd fills it,
// starts davgw with a config loaded by LoadCredential, stops it with exit
// code 0 on its KillSignal within TimeoutStopSec, and a bad config exits
// with the status RestartPreventExitStatus names. The only change made to
// the file is ExecStart's binary path (verify requires it to exist).
func TestSystemdUnit(t *testing.T) {
	analyze, err := toolPath("DAVGW_SYSTEMD_ANALYZE", "systemd-analyze", "")
	requireTool(t, err)
	bin := davgwBinary(t)
	unit := deployFile(t, systemdUnit, "ExecStart="+systemdUnitBin+" ", "ExecStart="+bin+" ")
	service := parseUnit(t, unit)["Service"]
	dir := t.TempDir()
	path := filepath.Join(dir, "davgw.service")
	if err := os.WriteFile(path, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("systemd-analyze verify accepts it without a warning", func(t *testing.T) {
		out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	})

	t.Run("systemd-analyze security rates it OK", func(t *testing.T) {
		out, err := exec.Command(analyze, "security", "--offline=yes", "--threshold=20", path).CombinedOutput()
		m := regexp.MustCompile(`Overall exposure level for davgw\.service: ([0-9.]+) (\w+)`).FindSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("systemd-analyze security (threshold 2.0): %v\n%s", err, out)
		}
		report(t, "systemd unit: systemd-analyze security exposure %s %s (0 = fully sandboxed, 10 = not at all)", m[1], m[2])
	})

	t.Run("it does not claim a reload davgw cannot do", func(t *testing.T) {
		// davgw stops on SIGHUP (it does not handle it); an ExecReload
		// would stop the service instead of reloading it.
		if r := service["ExecReload"]; len(r) > 0 {
			t.Errorf("the unit has ExecReload=%s, but davgw does not reload its config on a signal", r[0])
		}
	})

	t.Run("its ExecStart serves with the credential config and stops cleanly on KillSignal", func(t *testing.T) {
		argv := strings.Fields(single(t, service, "ExecStart"))
		creds := loadedCredentials(t, service)
		credDir := t.TempDir()
		for i, a := range argv {
			if rest, ok := strings.CutPrefix(a, "%d/"); ok {
				if !creds[rest] {
					t.Fatalf("ExecStart names %%d/%s, which no LoadCredential= loads (it loads %v)", rest, creds)
				}
				argv[i] = filepath.Join(credDir, rest)
			} else if strings.Contains(a, "%") {
				t.Fatalf("ExecStart argument %q has a specifier this test does not fill in", a)
			}
		}
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		b := getBackend(t, "versitygw")
		users := map[string]string{"sdalice": "pw-systemd-alice"}
		cfg := gatewayConfig(t, b, port, bcrypt.MinCost, "", "", users)
		if err := os.WriteFile(filepath.Join(credDir, "config.toml"), []byte(cfg), 0o400); err != nil {
			t.Fatal(err)
		}
		// The service's working directory is its state directory.
		p, err := startProcess("davgw (systemd ExecStart)", t.TempDir(), argv[0], nil, argv[1:]...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.stop(5 * time.Second)
		base := "http://127.0.0.1:" + strconv.Itoa(port)
		if err := waitHTTP(context.Background(), p, base+"/healthz", 20*time.Second); err != nil {
			t.Fatal(err)
		}
		g := &servedGateway{base: base, p: p, b: b}
		if st, _ := g.do(t, "PROPFIND", "/dav/", "sdalice", users["sdalice"], nil, "Depth", "0"); st != 207 {
			t.Fatalf("PROPFIND /dav/ as sdalice: %d, want 207", st)
		}
		if !strings.Contains(p.log.String(), `"msg":"request"`) {
			t.Errorf("ExecStart asks for -log-format json, but the log is not JSON:\n%s", p.log.String())
		}

		sig := unitSignal(t, single(t, service, "KillSignal"))
		timeout, err := time.ParseDuration(single(t, service, "TimeoutStopSec"))
		if err != nil {
			t.Fatalf("TimeoutStopSec: %v", err)
		}
		start := time.Now()
		if err := p.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		select {
		case <-p.done:
		case <-time.After(timeout):
			t.Fatalf("davgw did not stop within TimeoutStopSec=%v of %v", timeout, sig)
		}
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("davgw exited with %d on %v, want 0 (systemd would count a failure):\n%s", code, sig, p.log.String())
		}
		report(t, "systemd unit: ExecStart served, stopped on %v with exit 0 in %v", sig, time.Since(start).Round(time.Millisecond))
	})

	t.Run("a bad config exits with the status that stops restarts", func(t *testing.T) {
		want, err := strconv.Atoi(single(t, service, "RestartPreventExitStatus"))
		if err != nil {
			t.Fatal(err)
		}
		cfg := filepath.Join(t.TempDir(), "config.toml")
		if err := os.WriteFile(cfg, []byte("[server]\nlisten = \"127.0.0.1:1\"\nno_such_key = 1\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		err = exec.Command(bin, "serve", "-config", cfg).Run()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != want {
			t.Errorf("davgw serve with an unknown key: %v, want exit status %d (RestartPreventExitStatus)", err, want)
		}
	})
}

// parseUnit reads a unit file: section -> key -> values in order.
func parseUnit(t *testing.T, unit string) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(strings.NewReader(unit))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[':
			section = strings.Trim(line, "[]")
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("unit line %q is not Key=Value in a section", line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

// single returns the one value of key, failing if there is not exactly one.
func single(t *testing.T, section map[string][]string, key string) string {
	t.Helper()
	if v := section[key]; len(v) == 1 {
		return v[0]
	}
	t.Fatalf("the unit should set %s= once, has %q", key, section[key])
	return ""
}

// loadedCredentials are the IDs of the unit's LoadCredential= lines.
func loadedCredentials(t *testing.T, service map[string][]string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, v := range service["LoadCredential"] {
		id, _, _ := strings.Cut(v, ":")
		ids[id] = true
	}
	return ids
}

// unitSignal maps a KillSignal= value to the signal.
func unitSignal(t *testing.T, name string) syscall.Signal {
	t.Helper()
	switch name {
	case "SIGTERM":
		return syscall.SIGTERM
	case "SIGINT":
		return syscall.SIGINT
	}
	t.Fatalf("KillSignal=%s: davgw stops gracefully on SIGTERM or SIGINT only", name)
	return 0
}
