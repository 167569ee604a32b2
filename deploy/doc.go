// Package deploy holds the files operators install davgw with: a hardened
// systemd unit (systemd/), Kubernetes manifests (kubernetes/) and
// reverse-proxy configurations for nginx (nginx/) and Caddy (caddy/). It
// has no code: its tests check the manifests against the Kubernetes API
// types and against davgw's own config parser; tests/ runs the unit's
// command line and the proxies in front of a real gateway.
package deploy
