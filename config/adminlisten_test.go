package config

import (
	"strings"
	"testing"
)

func TestValidateAdminListen(t *testing.T) {
	tests := []struct {
		name    string
		server  string // the [server] table's keys
		wantErr string // "" = valid
	}{
		{name: "unset is valid (no admin listener)", server: ``},
		{name: "a loopback address is valid", server: `admin_listen = "127.0.0.1:9464"`},
		{name: "port 0 is valid even when listen uses it too", server: "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\""},
		{name: "another port on the listen host is valid", server: "listen = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:8081\""},
		{name: "the same port on another host is valid", server: "listen = \"10.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:8080\""},
		{name: "a missing port is refused", server: `admin_listen = "9464"`, wantErr: "host:port"},
		{name: "a port out of range is refused", server: `admin_listen = "127.0.0.1:70000"`, wantErr: "port"},
		{name: "the WebDAV listen address is refused", server: "listen = \"127.0.0.1:8080\"\nadmin_listen = \"127.0.0.1:8080\"", wantErr: "must differ from server.listen"},
		{name: "the listen port on all interfaces is refused", server: "listen = \"127.0.0.1:8080\"\nadmin_listen = \":8080\"", wantErr: "must differ from server.listen"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte("[server]\n"+tt.server+"\n"+minimal), env(nil))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if !strings.Contains(tt.server, "admin_listen") && c.Server.AdminListen != "" {
					t.Fatalf("admin_listen defaults to %q, want empty", c.Server.AdminListen)
				}
				return
			}
			found := false
			for _, p := range problems(err) {
				if p.Key == "server.admin_listen" && strings.Contains(p.Msg, tt.wantErr) {
					found = true
				}
			}
			if !found {
				t.Fatalf("want a server.admin_listen problem containing %q; got %v", tt.wantErr, err)
			}
		})
	}
}
