package auth

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
)

// ReservedPrefix is the key prefix below [s3].prefix that davgw keeps for
// itself (the shared app-password store lives under it). No user root may
// equal it, contain it or lie inside it: a root of "" (the whole prefix) is
// refused for OIDC users for the same reason.
const ReservedPrefix = ".davgw/"

// Claims are what the identity provider says about a user, already picked
// out of the token or userinfo answer by the configured claim names.
type Claims struct {
	// Subject is the "sub" claim.
	Subject string `json:"sub"`
	// Username is the value of [auth.oidc].username_claim.
	Username string `json:"username"`
	// Email is the "email" claim, "" if absent.
	Email string `json:"email,omitempty"`
	// EmailVerified is the "email_verified" claim. Email is only used in
	// a root, or as the user name, when it is true.
	EmailVerified bool `json:"email_verified,omitempty"`
	// Groups is the value of [auth.oidc].groups_claim.
	Groups []string `json:"groups,omitempty"`
}

// Rule is one [[auth.rules]] entry: users in Group get Root (a template
// with the same placeholders as [auth].root) and/or become read-only.
type Rule struct {
	// Group is the group name the rule matches.
	Group string
	// Root, when set, overrides the root template.
	Root string
	// ReadOnly makes matching users read-only.
	ReadOnly bool
}

// ClaimError says why claims were refused. Its text names the claim and
// quotes the offending value (claims are not secrets); it is meant for the
// audit log, never for the client.
type ClaimError struct {
	Claim string
	Value string
	Why   string
}

func (e *ClaimError) Error() string {
	return fmt.Sprintf("auth: claim %s = %q refused: %s", e.Claim, e.Value, e.Why)
}

// Mapper turns Claims into a Principal: the root template with its
// placeholders filled in, then the first matching [[auth.rules]] entry.
type Mapper struct {
	usernameClaim string
	// state is replaced whole (Replace, ReserveNames): a request maps
	// with one consistent set of rules.
	state atomic.Pointer[mapperState]
}

type mapperState struct {
	rootTemplate string
	rules        []Rule
	static       map[string]bool // lower-case [[auth.users]] names
}

// ReserveNames refuses OIDC users whose user name equals one of names
// (the [[auth.users]] names), ignoring case: an IdP account must never
// share a static user's name, root or app passwords.
func (m *Mapper) ReserveNames(names []string) {
	st := *m.state.Load()
	st.static = reserved(names)
	m.state.Store(&st)
}

func reserved(names []string) map[string]bool {
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[strings.ToLower(n)] = true
	}
	return out
}

// NewMapper checks the root template and the rules' roots and returns a
// Mapper. usernameClaim only names the claim in error messages.
func NewMapper(rootTemplate, usernameClaim string, rules []Rule) (*Mapper, error) {
	st, err := newMapperState(rootTemplate, rules)
	if err != nil {
		return nil, err
	}
	if usernameClaim == "" {
		usernameClaim = DefaultUsernameClaim
	}
	m := &Mapper{usernameClaim: usernameClaim}
	m.state.Store(st)
	return m, nil
}

// Replace swaps in a new root template, rules and reserved names (a
// config reload), checked as NewMapper checks them; on an error nothing
// changes. The next request of every OIDC user maps with them.
func (m *Mapper) Replace(rootTemplate string, rules []Rule, reservedNames []string) error {
	st, err := newMapperState(rootTemplate, rules)
	if err != nil {
		return err
	}
	st.static = reserved(reservedNames)
	m.state.Store(st)
	return nil
}

func newMapperState(rootTemplate string, rules []Rule) (*mapperState, error) {
	if err := CheckRootTemplate(rootTemplate); err != nil {
		return nil, fmt.Errorf("auth: root %q: %w", rootTemplate, err)
	}
	for i, r := range rules {
		if r.Group == "" {
			return nil, fmt.Errorf("auth: rule %d: empty group", i)
		}
		if r.Root != "" {
			if err := CheckRootTemplate(r.Root); err != nil {
				return nil, fmt.Errorf("auth: rule %d root %q: %w", i, r.Root, err)
			}
		}
	}
	return &mapperState{rootTemplate: rootTemplate, rules: append([]Rule(nil), rules...)}, nil
}

// Principal maps claims to a Principal. It returns a *ClaimError when a
// claim that is used (the user name always; {sub} and {email} when the
// chosen root uses them) is empty or unsafe, when the e-mail address is
// used (in the root, or as the user name) without email_verified, when the
// user name is a static user's, or when the root would be "" or reach
// ReservedPrefix. Such claims never map to any root. The user name and
// e-mail address are folded to lower case.
func (m *Mapper) Principal(c Claims) (Principal, error) {
	c.Username, c.Email = strings.ToLower(c.Username), strings.ToLower(c.Email)
	if err := SafeClaimValue(c.Username); err != nil {
		return Principal{}, &ClaimError{Claim: m.usernameClaim, Value: c.Username, Why: err.Error()}
	}
	if m.usernameClaim == "email" && !c.EmailVerified {
		return Principal{}, &ClaimError{Claim: "email_verified", Value: "false", Why: "the user name is the e-mail address, which the IdP has not verified"}
	}
	st := m.state.Load()
	if st.static[c.Username] {
		return Principal{}, &ClaimError{Claim: m.usernameClaim, Value: c.Username, Why: "equals the name of a static user ([[auth.users]])"}
	}
	store, tmpl, readOnly := "", st.rootTemplate, false
	for _, r := range st.rules {
		if c.inGroup(r.Group) {
			if r.Root != "" {
				tmpl = r.Root
			}
			readOnly = r.ReadOnly
			break
		}
	}
	store, tmpl = SplitRoot(tmpl)
	values := map[string]struct{ claim, value string }{
		"{username}": {m.usernameClaim, c.Username},
		"{sub}":      {"sub", c.Subject},
		"{email}":    {"email", c.Email},
	}
	if strings.Contains(tmpl, "{email}") && !c.EmailVerified {
		return Principal{}, &ClaimError{Claim: "email_verified", Value: "false", Why: "the root uses {email}, which the IdP has not verified"}
	}
	root := tmpl
	for ph, v := range values {
		if !strings.Contains(root, ph) {
			continue
		}
		if err := SafeClaimValue(v.value); err != nil {
			return Principal{}, &ClaimError{Claim: v.claim, Value: v.value, Why: err.Error()}
		}
		root = strings.ReplaceAll(root, ph, v.value)
	}
	clean, err := CleanRoot(root)
	if err != nil {
		return Principal{}, &ClaimError{Claim: "root", Value: root, Why: err.Error()}
	}
	if err := CheckNotReserved(clean); err != nil {
		return Principal{}, &ClaimError{Claim: "root", Value: clean, Why: err.Error()}
	}
	return Principal{Username: c.Username, Store: store, Root: clean, ReadOnly: readOnly}, nil
}

func (c Claims) inGroup(g string) bool {
	for _, x := range c.Groups {
		if x == g {
			return true
		}
	}
	return false
}

// SafeClaimValue checks a claim value before it becomes part of a key
// prefix. The safe set is the one of ValidUsername: 1 to 64 characters from
// [A-Za-z0-9._@-], not starting with "."; in addition ".." anywhere is
// refused. So "/", "\", "%", spaces, control characters and non-ASCII
// letters are all refused, and "../bob", "bob/" or "%2e%2e" never reach a
// root.
func SafeClaimValue(v string) error {
	if v == "" {
		return errors.New("empty")
	}
	if err := ValidUsername(v); err != nil {
		return err
	}
	if strings.Contains(v, "..") {
		return errors.New(`contains ".."`)
	}
	return nil
}

// CheckNotReserved refuses a clean root that is "" (it would contain
// ReservedPrefix) or that starts with ReservedPrefix.
func CheckNotReserved(cleanRoot string) error {
	if cleanRoot == "" {
		return errors.New("root must not be the whole prefix: it would contain " + ReservedPrefix)
	}
	if strings.HasPrefix(cleanRoot, ReservedPrefix) {
		return errors.New("root must not be inside the reserved prefix " + ReservedPrefix)
	}
	return nil
}

// SplitRoot splits a root template of [auth].root, [[auth.users]].root or
// [[auth.rules]].root into the store it names and the path in it:
// "finance:teams/{username}/" is the path "teams/{username}/" of the store
// "finance"; a root without "NAME:" (no ":" before the first "/") is in
// the default store, "". It is the one place that reads the "NAME:" form;
// CheckStoreName checks the name.
func SplitRoot(t string) (store, root string) {
	i := strings.IndexByte(t, ':')
	if i < 0 || strings.Contains(t[:i], "/") {
		return "", t
	}
	return t[:i], t[i+1:]
}

// CheckStoreName checks the name of a store ([s3.stores.NAME], the NAME: of
// a root): 1 to 32 characters from [a-z0-9_-].
func CheckStoreName(name string) error {
	if name == "" || len(name) > 32 {
		return errors.New("a store name must be 1 to 32 characters")
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' && c != '-' {
			return errors.New("a store name may only contain a-z, 0-9, '_' and '-'")
		}
	}
	return nil
}

// CheckRootTemplate checks a root template as config validation does: a
// valid store name if it names one, known placeholders only, a clean prefix
// once they are filled in, neither "" nor inside ReservedPrefix.
func CheckRootTemplate(t string) error {
	store, s := SplitRoot(t)
	if t != s {
		if err := CheckStoreName(store); err != nil {
			return err
		}
	}
	for _, ph := range []string{"{username}", "{sub}", "{email}"} {
		s = strings.ReplaceAll(s, ph, "x")
	}
	if strings.ContainsAny(s, "{}") {
		return errors.New("unknown placeholder: use {username}, {sub} or {email}")
	}
	clean, err := CleanRoot(s)
	if err != nil {
		return err
	}
	return CheckNotReserved(clean)
}
