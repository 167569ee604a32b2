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

	"golang.org/x/net/webdav"

	"github.com/davgw/davgw/s3vfs"
)

// Dead properties are kept with the object they belong to, in one user
// metadata entry (a folder's live on its marker object). The value is
// base64url(deflate(JSON)) so that any XML survives S3's ASCII-only metadata.
//
// S3 listings do not return metadata: a Depth 1 PROPFIND shows children's
// dead properties only where they are known without a request. A Depth 0
// PROPFIND of the resource itself always shows them.
const (
	propsMetaKey = "davgw-props"
	// maxPropsBytes keeps the encoded value well inside S3's 2 KiB limit
	// on all user metadata of an object.
	maxPropsBytes = 1800
)

type storedProp struct {
	Space string `json:"s,omitempty"`
	Local string `json:"l"`
	Lang  string `json:"g,omitempty"`
	XML   string `json:"x,omitempty"`
}

func decodeProps(v string) (map[xml.Name]webdav.Property, error) {
	out := make(map[xml.Name]webdav.Property)
	if v == "" {
		return out, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return nil, err
	}
	js, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), 1<<20))
	if err != nil {
		return nil, err
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

// DeadProps returns the resource's dead properties. For entries that came
// from a listing (Depth 1 children) it returns none rather than spend a
// request per entry.
func (fl *File) DeadProps() (map[xml.Name]webdav.Property, error) {
	if fl.info == nil || fl.ctx.Value(liveOnlyKey{}) != nil {
		return nil, nil
	}
	meta, ok, err := fl.metadata(false)
	if err != nil || !ok {
		return nil, err
	}
	props, err := decodeProps(meta[propsMetaKey])
	if err != nil {
		return nil, nil // unreadable props are not worth failing a PROPFIND
	}
	return props, nil
}

// metadata returns the resource's user metadata. fresh forces a HEAD.
// ok is false when it is unknown and finding out would cost a request per
// listed entry.
func (fl *File) metadata(fresh bool) (map[string]string, bool, error) {
	fi := fl.info
	switch {
	case !fresh && fi.hasMeta:
		return fi.meta, true, nil
	case !fresh && !fi.direct:
		return nil, false, nil
	case fi.dir && !fi.hasMarker && !fresh:
		return nil, true, nil
	}
	obj, err := fl.fs.store.Head(fl.ctx, fi.key)
	if errors.Is(err, s3vfs.ErrNotFound) && fi.dir {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, pathError("stat", fl.path, fl.fs.note(err))
	}
	fi.meta, fi.hasMeta, fi.contentType = obj.Metadata, true, obj.ContentType
	if !fi.dir {
		fi.etag = obj.ETag
	}
	return obj.Metadata, true, nil
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
	if fl.info.dir && fl.info.key == "" {
		return status(http.StatusForbidden), nil // the bucket root has no marker to hold them
	}
	meta, _, err := fl.metadata(true)
	if err != nil {
		return nil, err
	}
	props, err := decodeProps(meta[propsMetaKey])
	if err != nil {
		props = make(map[xml.Name]webdav.Property)
	}
	for _, p := range patches {
		for _, prop := range p.Props {
			if p.Remove {
				delete(props, prop.XMLName)
			} else {
				props[prop.XMLName] = prop
			}
		}
	}
	enc, err := encodeProps(props)
	if err != nil {
		return nil, err
	}
	if len(enc) > maxPropsBytes {
		return status(http.StatusInsufficientStorage), nil
	}
	newMeta := make(map[string]string, len(meta)+1)
	for k, v := range meta {
		newMeta[k] = v
	}
	if enc == "" {
		delete(newMeta, propsMetaKey)
	} else {
		newMeta[propsMetaKey] = enc
	}
	if err := fl.writeMetadata(newMeta); err != nil {
		return nil, err
	}
	return status(http.StatusOK), nil
}

// writeMetadata replaces the resource's user metadata: a self-copy of a
// file (its bytes and content type unchanged, conditional on its ETag), or
// a rewrite of a folder's marker.
func (fl *File) writeMetadata(meta map[string]string) error {
	fi := fl.info
	var (
		obj s3vfs.ObjectInfo
		err error
	)
	if fi.dir {
		obj, err = fl.fs.store.PutObject(fl.ctx, fi.key, nil, s3vfs.WriteOptions{
			Size: 0, ContentType: "application/x-directory", Metadata: meta,
		})
		fi.hasMarker = true
	} else {
		obj, err = fl.fs.store.Copy(fl.ctx, fi.key, fi.Object(), fi.key, s3vfs.CopyOptions{
			SourceETag: fi.etag, ReplaceMetadata: true, Metadata: meta, ContentType: fi.contentType,
		})
	}
	if err != nil {
		return pathError("proppatch", fl.path, fl.fs.note(err))
	}
	fi.meta = meta
	if obj.ETag != "" {
		fi.etag = obj.ETag
	}
	if !obj.LastModified.IsZero() {
		fi.modTime = obj.LastModified
	}
	return nil
}
