package s3vfs

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// Credential sources accepted in Config.Credentials.
const (
	// CredentialsStatic uses Config.AccessKeyID, SecretAccessKey and
	// SessionToken.
	CredentialsStatic = "static"
	// CredentialsDefault uses the AWS SDK default chain: environment,
	// shared files, web identity, ECS, EC2 IMDS.
	CredentialsDefault = "default"
	// CredentialsIMDS uses the EC2 instance role through the instance
	// metadata service: IMDSv2 (session token) first, IMDSv1 only with
	// Config.IMDSv1Fallback. CrushFTP writes it as the access key
	// "iam_lookup" with the secret "lookup".
	CredentialsIMDS = "iam_lookup"
)

// Role session limits of STS AssumeRole.
const (
	// DefaultRoleSessionName is the session name when Config.RoleSessionName is "".
	DefaultRoleSessionName = "davgw"
	// DefaultRoleDuration is the session length when Config.RoleDuration is 0.
	DefaultRoleDuration = time.Hour
	// MinRoleDuration is the shortest session STS grants.
	MinRoleDuration = 15 * time.Minute
	// MaxRoleDuration is the longest session STS grants (the role's own
	// maximum may be lower).
	MaxRoleDuration = 12 * time.Hour
)

// maxRefreshMargin is how long before expiry credentials are refreshed at
// most; shorter-lived credentials are refreshed when a fifth of their life
// is left.
const maxRefreshMargin = 5 * time.Minute

// refreshJitter spreads refreshes over the last half of maxRefreshMargin,
// so that many gateways do not call STS at once.
const refreshJitter = 0.5

// failedRefreshRetry is how soon a refresh is tried again after one failed
// while the previous credentials were still valid.
const failedRefreshRetry = 15 * time.Second

// minCredentialLife is the validity below which credentials are no longer
// used after a failed refresh: a request signed with them must still reach
// S3 before they expire. A variable for tests.
var minCredentialLife = 5 * time.Second

// imdsTimeout bounds each call to the instance metadata service.
const imdsTimeout = 5 * time.Second

// CredentialSource returns the effective source: Credentials, else static
// when keys are given, else the default chain.
func (c Config) CredentialSource() string {
	switch {
	case c.Credentials != "":
		return c.Credentials
	case c.AccessKeyID != "":
		return CredentialsStatic
	default:
		return CredentialsDefault
	}
}

// credentialChain is the credential provider of a Store and a
// secret-free description of where its credentials come from.
type credentialChain struct {
	provider aws.CredentialsProvider // nil = the SDK default chain of LoadDefaultConfig
	source   string                  // e.g. "EC2 instance role (IMDSv2 at http://...)"
	region   string                  // region learnt from IMDS, "" if not asked
}

// baseCredentials builds the provider of the configured source, before any
// AssumeRole. imdsClient is the HTTP client for the metadata service
// (never through a proxy).
func baseCredentials(ctx context.Context, cfg Config, imdsClient *http.Client) (credentialChain, error) {
	switch cfg.CredentialSource() {
	case CredentialsStatic:
		src := "static keys, access key ID " + cfg.AccessKeyID
		if cfg.SessionToken != "" {
			src += " with a session token"
		}
		return credentialChain{
			provider: credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken),
			source:   src,
		}, nil
	case CredentialsIMDS:
		client := newIMDSClient(cfg, imdsClient, imds.ClientEnabled)
		ch := credentialChain{
			// The provider's own HandleFailToRefresh (keep using the role's
			// credentials during an IMDS outage) and AdjustExpiresBy apply.
			provider: newCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = client })),
			source:   "EC2 instance role via " + imdsDescription(cfg),
		}
		if cfg.Region == "" {
			rctx, cancel := context.WithTimeout(ctx, imdsTimeout)
			defer cancel()
			out, err := client.GetRegion(rctx, &imds.GetRegionInput{})
			if err != nil {
				return ch, fmt.Errorf("s3vfs: region from the instance metadata service (set the region to skip this): %w", err)
			}
			ch.region = out.Region
		}
		return ch, nil
	default:
		return credentialChain{source: "the AWS SDK default chain (environment, shared files, web identity, ECS, EC2 IMDS: " + imdsDescription(cfg) + ")"}, nil
	}
}

// newIMDSClient returns a metadata client that asks for an IMDSv2 token
// first and falls back to IMDSv1 only when the config allows it. hc must
// not go through a proxy.
func newIMDSClient(cfg Config, hc *http.Client, enable imds.ClientEnableState) *imds.Client {
	fallback := aws.FalseTernary
	if cfg.IMDSv1Fallback {
		fallback = aws.TrueTernary
	}
	return imds.New(imds.Options{
		Endpoint:          strings.TrimSuffix(cfg.IMDSEndpoint, "/"),
		HTTPClient:        hc,
		EnableFallback:    fallback,
		ClientEnableState: enable,
	})
}

func imdsDescription(cfg Config) string {
	ep := cfg.IMDSEndpoint
	if ep == "" {
		ep = os.Getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
	}
	if ep == "" {
		ep = "http://169.254.169.254"
	}
	if cfg.IMDSv1Fallback {
		return "IMDSv2 with IMDSv1 fallback at " + ep
	}
	return "IMDSv2 at " + ep
}

// assumeRole wraps base in an STS AssumeRole provider, cached and refreshed
// before expiry. stsClient sends the STS requests.
func assumeRole(cfg Config, base aws.CredentialsProvider, region string, stsHTTP *http.Client) aws.CredentialsProvider {
	stsOpts := sts.Options{
		Region:      region,
		Credentials: base,
		HTTPClient:  stsHTTP,
	}
	if cfg.STSEndpoint != "" {
		stsOpts.BaseEndpoint = aws.String(strings.TrimSuffix(cfg.STSEndpoint, "/"))
	}
	client := sts.New(stsOpts)
	name := cfg.RoleSessionName
	if name == "" {
		name = DefaultRoleSessionName
	}
	dur := cfg.RoleDuration
	if dur == 0 {
		dur = DefaultRoleDuration
	}
	p := stscreds.NewAssumeRoleProvider(client, cfg.RoleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = name
		o.Duration = dur
		if cfg.ExternalID != "" {
			o.ExternalID = aws.String(cfg.ExternalID)
		}
	})
	return newCredentialsCache(&refreshBeforeExpiry{next: p})
}

// newCredentialsCache caches p's credentials and refreshes them before
// they expire (see refreshBeforeExpiry; providers with their own
// AdjustExpiresBy and HandleFailToRefresh, such as ec2rolecreds, keep them).
func newCredentialsCache(p aws.CredentialsProvider) *aws.CredentialsCache {
	return aws.NewCredentialsCache(p, cacheOptions)
}

// cacheOptions makes a credentials cache refresh up to maxRefreshMargin
// before expiry, with jitter.
func cacheOptions(o *aws.CredentialsCacheOptions) {
	o.ExpiryWindow = maxRefreshMargin
	o.ExpiryWindowJitterFrac = refreshJitter
}

// refreshBeforeExpiry wraps a provider of expiring credentials (STS
// AssumeRole) for an aws.CredentialsCache. The cache refreshes them a
// fifth of their lifetime early, at most its expiry window
// (AdjustExpiresBy), so that no request is signed with credentials about
// to expire. When that early refresh fails, the previous credentials are
// used while they are really valid, and the refresh is retried soon
// (HandleFailToRefresh): a failed refresh never fails a request that the
// old credentials could still sign.
type refreshBeforeExpiry struct {
	next aws.CredentialsProvider

	mu   sync.Mutex
	last aws.Credentials // as retrieved, with the real expiry
}

// Retrieve implements aws.CredentialsProvider.
func (r *refreshBeforeExpiry) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := r.next.Retrieve(ctx)
	if err != nil {
		return c, err
	}
	r.mu.Lock()
	r.last = c
	r.mu.Unlock()
	return c, nil
}

// AdjustExpiresBy implements aws.AdjustExpiresByCredentialsCacheStrategy:
// the cache asks to move the expiry by dur (negative: its expiry window);
// credentials are refreshed at most a fifth of their remaining life early.
func (r *refreshBeforeExpiry) AdjustExpiresBy(c aws.Credentials, dur time.Duration) (aws.Credentials, error) {
	if !c.CanExpire || dur >= 0 {
		return c, nil
	}
	c.Expires = c.Expires.Add(-min(-dur, refreshMargin(time.Until(c.Expires))))
	return c, nil
}

// HandleFailToRefresh implements aws.HandleFailRefreshCredentialsCacheStrategy:
// after a failed refresh, the last credentials are returned while they
// stay valid for more than minCredentialLife, marked to be refreshed
// again within failedRefreshRetry; otherwise the error is.
func (r *refreshBeforeExpiry) HandleFailToRefresh(_ context.Context, _ aws.Credentials, err error) (aws.Credentials, error) {
	r.mu.Lock()
	last := r.last
	r.mu.Unlock()
	left := time.Until(last.Expires)
	if !last.HasKeys() || !last.CanExpire || left <= minCredentialLife {
		return aws.Credentials{}, err
	}
	last.Expires = time.Now().Add(min(failedRefreshRetry, left-minCredentialLife))
	return last, nil
}

var (
	_ aws.AdjustExpiresByCredentialsCacheStrategy   = (*refreshBeforeExpiry)(nil)
	_ aws.HandleFailRefreshCredentialsCacheStrategy = (*refreshBeforeExpiry)(nil)
)

// refreshMargin is how long before expiry credentials with the given
// remaining lifetime are refreshed.
func refreshMargin(life time.Duration) time.Duration {
	if life <= 0 {
		return 0
	}
	return min(life/5, maxRefreshMargin)
}

// CredentialSource describes where the Store's credentials come from
// (static keys, instance role, default chain, assumed role), without any
// secret.
func (s *Store) CredentialSource() string { return s.credSource }

// ResolveCredentials fetches (or reuses) the Store's credentials, as the
// next S3 request would, and returns the access key ID and expiry: a probe
// for `davgw check`. It never returns the secret.
func (s *Store) ResolveCredentials(ctx context.Context) (accessKeyID string, expires time.Time, err error) {
	if s.creds == nil {
		return "", time.Time{}, fmt.Errorf("s3vfs: no credentials provider")
	}
	c, err := s.creds.Retrieve(ctx)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("s3vfs: resolving credentials (%s): %w", s.credSource, err)
	}
	if c.CanExpire {
		expires = c.Expires
	}
	return c.AccessKeyID, expires, nil
}
