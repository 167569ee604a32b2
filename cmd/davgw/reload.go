package main

import (
	"log/slog"
	"reflect"
	"slices"
	"sync"

	"github.com/davgw/davgw/auth"
	"github.com/davgw/davgw/config"
	"github.com/davgw/davgw/gateway"
	"github.com/davgw/davgw/locks"
)

// configReloader applies a changed config file on SIGHUP, for the parts
// that can change under running requests: [auth].root, [[auth.users]],
// [[auth.rules]] and [limits]' request and lock bounds. A file that does
// not load changes nothing; other changed tables are named in the log as
// needing a restart. `davgw check` validates a file before the signal.
type configReloader struct {
	path string
	log  *slog.Logger

	mu     sync.Mutex
	cfg    *config.Config // the config in effect
	static *auth.Static
	// staticInChain: the static users sign in (without OIDC, or with OIDC
	// and users at start); an OIDC gateway started without users needs a
	// restart to get some.
	staticInChain bool
	mapper        *auth.Mapper // nil without OIDC
	locks         *locks.Table
	gw            *gateway.Gateway
}

// reload reads the file again and applies what it can.
func (r *configReloader) reload() {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, err := config.LoadFile(r.path)
	if err != nil {
		// The messages name keys and values the operator wrote, never a
		// secret (config redacts them).
		r.log.Error("SIGHUP: the config does not load; nothing changed (run `davgw check`)", "file", r.path, "err", err)
		return
	}
	if !r.staticInChain && len(cfg.Auth.Users) > 0 {
		r.log.Error("SIGHUP: [[auth.users]] added to a gateway that started without static users: restart to use them; nothing changed", "file", r.path)
		return
	}
	if !sameStoreNames(r.cfg, cfg) {
		r.log.Error("SIGHUP: [s3.stores.NAME] tables added or removed: restart to change the stores; nothing changed", "file", r.path)
		return
	}
	// Check every part before changing any.
	if err := r.static.Replace(staticUsers(cfg), cfg.Auth.Root); err != nil {
		r.log.Error("SIGHUP: [[auth.users]]; nothing changed", "err", err)
		return
	}
	if r.mapper != nil {
		if err := r.mapper.Replace(cfg.Auth.Root, authRules(cfg), userNames(cfg)); err != nil {
			// Roll the users back: the reload is all or nothing.
			_ = r.static.Replace(staticUsers(r.cfg), r.cfg.Auth.Root)
			r.log.Error("SIGHUP: [[auth.rules]]; nothing changed", "err", err)
			return
		}
	}
	r.gw.SetRequestLimits(requestLimits(cfg))
	r.locks.SetLimits(lockLimits(cfg))
	restart := restartNeeded(r.cfg, cfg)
	r.cfg = cfg
	r.log.Info("SIGHUP: config reloaded", "file", r.path, "users", len(cfg.Auth.Users), "rules", len(cfg.Auth.Rules))
	if len(restart) > 0 {
		r.log.Warn("SIGHUP: changed settings that take effect only after a restart", "tables", restart)
	}
}

// sameStoreNames reports whether old and new declare the same named
// stores: a reload cannot add one (its clients are made at start) and a
// root may name only one that runs.
func sameStoreNames(old, new *config.Config) bool {
	a, b := old.Stores(), new.Stores()
	return slices.EqualFunc(a, b, func(x, y config.StoreConfig) bool { return x.Name == y.Name })
}

// restartNeeded names the tables that differ between old and new in
// settings a reload does not apply.
func restartNeeded(old, new *config.Config) []string {
	a, b := fixedPart(old), fixedPart(new)
	var out []string
	for _, t := range []struct {
		name string
		a, b any
	}{
		{"[server]", a.Server, b.Server},
		{"[s3]", a.S3, b.S3},
		{"[auth] (other than root, users, rules)", a.Auth, b.Auth},
		{"[webdav]", a.WebDAV, b.WebDAV},
		{"[locks]", a.Locks, b.Locks},
		{"[limits] (other than xml_depth, xml_elements, ranges_per_request, locks_per_user, lock_owner_bytes)", a.Limits, b.Limits},
	} {
		if !reflect.DeepEqual(t.a, t.b) {
			out = append(out, t.name)
		}
	}
	return out
}

// fixedPart is c without the settings a reload applies.
func fixedPart(c *config.Config) config.Config {
	f := config.Config{Server: c.Server, S3: c.S3, Auth: c.Auth, WebDAV: c.WebDAV, Locks: c.Locks, Limits: c.Limits}
	f.Auth.Root, f.Auth.Users, f.Auth.Rules = "", nil, nil
	f.Limits.XMLDepth, f.Limits.XMLElements, f.Limits.RangesPerRequest = 0, 0, 0
	f.Limits.LocksPerUser, f.Limits.LockOwnerBytes = 0, ""
	return f
}

// authRules is [[auth.rules]] for auth.
func authRules(cfg *config.Config) []auth.Rule {
	rules := make([]auth.Rule, 0, len(cfg.Auth.Rules))
	for _, r := range cfg.Auth.Rules {
		rules = append(rules, auth.Rule{Group: r.Group, Root: r.Root, ReadOnly: r.ReadOnly})
	}
	return rules
}

// userNames is the names of [[auth.users]].
func userNames(cfg *config.Config) []string {
	names := make([]string, 0, len(cfg.Auth.Users))
	for _, u := range cfg.Auth.Users {
		names = append(names, u.Name)
	}
	return names
}
