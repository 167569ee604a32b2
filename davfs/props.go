package davfs

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/webdav"
)

// Dead properties are kept in the parent folder's index (see index.go),
// encoded as base64url(deflate(JSON)). A few properties are not kept as
// such but set the kept modification time: DAV:lastmodified (ownCloud and
// rclone), DAV:getlastmodified (x/net/webdav protects it, so the gateway
// hands it over under mtimeSetter), and Windows' Win32LastModifiedTime,
// which is also kept as a dead property because Windows reads it back.

// mtimeSetter is the name under which the HTTP edge passes a PROPPATCH of
// DAV:getlastmodified.
var mtimeSetter = xml.Name{Space: "urn:davgw:", Local: "getlastmodified"}

// MTimeSetter returns mtimeSetter (for the HTTP edge).
func MTimeSetter() xml.Name { return mtimeSetter }

var (
	ownCloudLastModified = xml.Name{Space: "DAV:", Local: "lastmodified"}
	win32LastModified    = xml.Name{Space: "urn:schemas-microsoft-com:", Local: "Win32LastModifiedTime"}
	ocChecksums          = xml.Name{Space: "http://owncloud.org/ns", Local: "checksums"}
)

type storedProp struct {
	Space string `json:"s,omitempty"`
	Local string `json:"l"`
	Lang  string `json:"g,omitempty"`
	XML   string `json:"x,omitempty"`
}

// errPropsTooLarge: one resource's dead properties would exceed
// maxEntryPropsJSON uncompressed.
var errPropsTooLarge = errors.New("davfs: the dead properties exceed their size limit")

func decodeProps(v string) (map[xml.Name]webdav.Property, error) {
	out := make(map[xml.Name]webdav.Property)
	if v == "" {
		return out, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, err
	}
	js, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), maxEntryPropsJSON+1))
	if err != nil {
		return nil, err
	}
	if len(js) > maxEntryPropsJSON {
		return nil, errPropsTooLarge
	}
	var list []storedProp
	if err := json.Unmarshal(js, &list); err != nil {
		return nil, err
	}
	for _, p := range list {
		n := xml.Name{Space: p.Space, Local: p.Local}
		out[n] = webdav.Property{XMLName: n, Lang: p.Lang, InnerXML: []byte(p.XML)}
	}
	return out, nil
}

func encodeProps(props map[xml.Name]webdav.Property) (string, error) {
	if len(props) == 0 {
		return "", nil
	}
	list := make([]storedProp, 0, len(props))
	for n, p := range props {
		list = append(list, storedProp{Space: n.Space, Local: n.Local, Lang: p.Lang, XML: string(p.InnerXML)})
	}
	sort.Slice(list, func(i, j int) bool {
		if list[i].Space != list[j].Space {
			return list[i].Space < list[j].Space
		}
		return list[i].Local < list[j].Local
	})
	js, err := json.Marshal(list)
	if err != nil {
		return "", err
	}
	if len(js) > maxEntryPropsJSON {
		return "", errPropsTooLarge
	}
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = zw.Write(js)
	_ = zw.Close()
	return base64.RawURLEncoding.EncodeToString(buf.Bytes()), nil
}

type liveOnlyKey struct{}

// WithLivePropsOnly marks a PROPFIND that asks only for live properties
// (Finder's listings do): DeadProps then answers without a request.
func WithLivePropsOnly(ctx context.Context) context.Context {
	return context.WithValue(ctx, liveOnlyKey{}, true)
}

type quotaKey struct{}

type quotaInfo struct{ used, available int64 }

// WithQuota makes DeadProps report RFC 4331's quota-used-bytes and
// quota-available-bytes on folders.
func WithQuota(ctx context.Context, used, available int64) context.Context {
	return context.WithValue(ctx, quotaKey{}, quotaInfo{used, available})
}

type lockDiscoveryKey struct{}

// WithLockDiscovery makes DeadProps report DAV:lockdiscovery (x/net/webdav
// cannot list locks): discover returns its inner XML for a clean name.
func WithLockDiscovery(ctx context.Context, discover func(name string) []byte) context.Context {
	return context.WithValue(ctx, lockDiscoveryKey{}, discover)
}

func (fl *File) lockDiscovery(props map[xml.Name]webdav.Property) map[xml.Name]webdav.Property {
	if discover, ok := fl.ctx.Value(lockDiscoveryKey{}).(func(string) []byte); ok {
		n := xml.Name{Space: "DAV:", Local: "lockdiscovery"}
		props[n] = webdav.Property{XMLName: n, InnerXML: discover(fl.path)}
	}
	return props
}

type checksumsKey struct{}

// WithChecksums marks a PROPFIND that names oc:checksums: DeadProps then
// adds it for files whose ETag is an MD5 (single-part uploads on stores
// without SSE-KMS or SSE-C: Options.ETagsNotMD5), which costs nothing.
func WithChecksums(ctx context.Context) context.Context {
	return context.WithValue(ctx, checksumsKey{}, true)
}

// MD5 returns the object's MD5 in hex when its ETag is one (a plain
// single-part ETag of 32 hex digits), else "".
func (fi *FileInfo) MD5() string {
	e := strings.Trim(fi.etag, `"`)
	if fi.dir || len(e) != 32 {
		return ""
	}
	for _, c := range e {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return ""
		}
	}
	return e
}

// DeadProps returns the resource's dead properties from its folder's index
// (already loaded for listed entries; one GET for a resource found by Stat).
func (fl *File) DeadProps() (map[xml.Name]webdav.Property, error) {
	if fl.info == nil {
		return nil, nil
	}
	if fl.ctx.Value(liveOnlyKey{}) != nil {
		return fl.lockDiscovery(fl.creationDate(map[xml.Name]webdav.Property{})), nil
	}
	if !fl.info.metaLoaded {
		if !fl.info.direct {
			return nil, nil
		}
		if err := fl.fs.LoadMeta(fl.ctx, fl.info, fl.path); err != nil {
			return nil, err
		}
	}
	props, err := decodeProps(fl.info.props)
	if err != nil {
		props = map[xml.Name]webdav.Property{} // unreadable props are not worth failing a PROPFIND
	}
	fl.lockDiscovery(fl.creationDate(props))
	if q, ok := fl.ctx.Value(quotaKey{}).(quotaInfo); ok && fl.info.dir {
		for local, v := range map[string]int64{"quota-used-bytes": q.used, "quota-available-bytes": q.available} {
			n := xml.Name{Space: "DAV:", Local: local}
			props[n] = webdav.Property{XMLName: n, InnerXML: []byte(strconv.FormatInt(v, 10))}
		}
	}
	if fl.ctx.Value(checksumsKey{}) != nil && !fl.fs.opts.ETagsNotMD5 {
		if md5 := fl.info.MD5(); md5 != "" {
			props[ocChecksums] = webdav.Property{XMLName: ocChecksums,
				InnerXML: []byte(`<checksum xmlns="http://owncloud.org/ns">MD5:` + md5 + `</checksum>`)}
		}
	}
	return props, nil
}

// creationDate adds DAV:creationdate (x/net/webdav has none; Windows and
// Finder ask for it): S3 keeps no creation time, so it is the modification
// time, in ISO 8601 as RFC 4918 wants.
const isoTime = "2006-01-02T15:04:05Z"

func (fl *File) creationDate(props map[xml.Name]webdav.Property) map[xml.Name]webdav.Property {
	n := xml.Name{Space: "DAV:", Local: "creationdate"}
	if _, ok := props[n]; !ok && !fl.info.modTime.IsZero() {
		props[n] = webdav.Property{XMLName: n, InnerXML: fl.info.modTime.UTC().AppendFormat(make([]byte, 0, len(isoTime)), isoTime)}
	}
	return props
}

// Patch applies PROPPATCH instructions atomically: all or none.
func (fl *File) Patch(patches []webdav.Proppatch) ([]webdav.Propstat, error) {
	status := func(code int) []webdav.Propstat {
		ps := webdav.Propstat{Status: code}
		for _, p := range patches {
			for _, prop := range p.Props {
				ps.Props = append(ps.Props, webdav.Property{XMLName: prop.XMLName})
			}
		}
		return []webdav.Propstat{ps}
	}
	if fl.info == nil {
		return nil, &fs.PathError{Op: "proppatch", Path: fl.path, Err: fs.ErrInvalid}
	}
	var (
		mtime    time.Time
		badValue bool
	)
	apply := func(props map[xml.Name]webdav.Property) {
		for _, p := range patches {
			for _, prop := range p.Props {
				switch prop.XMLName {
				case mtimeSetter, ownCloudLastModified:
					if !p.Remove {
						if t, ok := parsePropTime(prop.InnerXML); ok {
							mtime = t
						} else {
							badValue = true
						}
					}
					continue
				case win32LastModified:
					if !p.Remove {
						if t, ok := parsePropTime(prop.InnerXML); ok {
							mtime = t
						}
					}
				}
				if p.Remove {
					delete(props, prop.XMLName)
				} else {
					props[prop.XMLName] = prop
				}
			}
		}
	}
	// Validate first (nothing is written for a bad request).
	probe := map[xml.Name]webdav.Property{}
	apply(probe)
	if badValue {
		return status(http.StatusConflict), nil
	}
	fi := fl.info
	parent, entry := entryName(fl.path, fi.dir)
	tooLarge := false
	err := fl.fs.updateIndex(fl.ctx, parent, func(m map[string]metaEntry) bool {
		e, ok := m[entry]
		if ok && !fi.dir && e.ETag != fi.etag {
			// Written for another version of the object: an older one (its
			// properties are stale) or, if a PUT raced this PROPPATCH, a
			// newer one, whose entry is left alone and patched.
			if newer, err := fl.fs.store.Head(fl.ctx, fi.key); err == nil && newer.ETag == e.ETag {
				fi.etag = e.ETag
			} else {
				e = metaEntry{}
			}
		}
		props, err := decodeProps(e.Props)
		switch {
		case errors.Is(err, errPropsTooLarge):
			// Stored past the limit by an older davgw: left as it is, and
			// refused rather than replaced by this patch alone.
			tooLarge = true
			return false
		case err != nil:
			props = map[xml.Name]webdav.Property{}
		}
		apply(props)
		enc, err := encodeProps(props)
		if err != nil || len(enc) > maxEntryProps {
			tooLarge = true
			return false
		}
		e.Props = enc
		if !mtime.IsZero() {
			e.MTime = mtime.UnixNano()
		}
		if !fi.dir {
			e.ETag = fi.etag
		}
		m[entry] = e
		fi.props, fi.metaLoaded = e.Props, true
		if e.MTime != 0 {
			fi.modTime = time.Unix(0, e.MTime).UTC()
		}
		return true
	})
	if tooLarge {
		return status(http.StatusInsufficientStorage), nil
	}
	if errors.Is(err, ErrIndexFull) {
		return status(http.StatusInsufficientStorage), nil
	}
	if err != nil {
		return nil, pathError("proppatch", fl.path, err)
	}
	return status(http.StatusOK), nil
}

// parsePropTime reads a time property value: an HTTP date (RFC 1123, what
// Windows and DAV:getlastmodified use), RFC 3339, or Unix seconds (what
// ownCloud clients send).
func parsePropTime(v []byte) (time.Time, bool) {
	s := strings.TrimSpace(string(v))
	if t, err := http.ParseTime(s); err == nil {
		return t.UTC(), true
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), true
	}
	return parseMTime(s)
}

// Props returns the dead properties a PROPFIND shows for fi at name (see
// File.DeadProps): no request for listed entries, whose index entries came
// with the listing.
func (f *FS) Props(ctx context.Context, name string, fi *FileInfo) (map[xml.Name]webdav.Property, error) {
	return (&File{fs: f, ctx: ctx, path: Clean(name), info: fi}).DeadProps()
}
