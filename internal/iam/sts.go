package iam

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/cofferhq/coffer/internal/auth"
	"github.com/cofferhq/coffer/internal/metadata"
)

// Credentials are temporary credentials from STS.
type Credentials struct {
	AccessKeyID     string
	SecretAccessKey string
	SessionToken    string
	Expiration      time.Time
	Principal       auth.Principal
}

var sessionNameRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)

// Trust decides whether caller may assume role; the server supplies it
// (the policy evaluator with the caller's identity policies).
type Trust func(ctx context.Context, caller auth.Principal, role Role) error

// AssumeRole returns temporary credentials for a session of roleARN, if
// trust allows the caller.
func (s *Service) AssumeRole(ctx context.Context, caller auth.Principal, roleARN, sessionName string, duration time.Duration, trust Trust) (Credentials, error) {
	if !sessionNameRE.MatchString(sessionName) {
		return Credentials{}, fmt.Errorf("%w: roleSessionName must be 2-64 characters of letters, digits and +=,.@_-", ErrValidation)
	}
	prefix := "arn:aws:iam::" + s.cfg.AccountID + ":role/"
	if !strings.HasPrefix(roleARN, prefix) {
		return Credentials{}, fmt.Errorf("%w: User: %s is not authorized to perform: sts:AssumeRole on resource: %s", ErrAccessDeniedTrust, caller.ARN, roleARN)
	}
	name := roleARN[strings.LastIndexByte(roleARN, '/')+1:]
	role, err := s.GetRole(ctx, name)
	if err != nil || role.ARN != roleARN {
		return Credentials{}, fmt.Errorf("%w: User: %s is not authorized to perform: sts:AssumeRole on resource: %s", ErrAccessDeniedTrust, caller.ARN, roleARN)
	}
	if duration == 0 {
		duration = time.Hour
	}
	if duration < 15*time.Minute || duration > time.Duration(role.MaxSessionDuration)*time.Second {
		return Credentials{}, fmt.Errorf("%w: The requested DurationSeconds exceeds the MaxSessionDuration set for this role.", ErrValidation)
	}
	if err := trust(ctx, caller, role); err != nil {
		return Credentials{}, err
	}
	p := auth.Principal{
		Type:        "AssumedRole",
		ARN:         "arn:aws:sts::" + s.cfg.AccountID + ":assumed-role/" + role.Name + "/" + sessionName,
		AccountID:   s.cfg.AccountID,
		PrincipalID: role.ID + ":" + sessionName,
		RoleARN:     role.ARN,
		SessionName: sessionName,
	}
	return s.newSession(ctx, Session{RoleName: role.Name, SessionName: sessionName, OwnerID: role.ID}, p, duration)
}

// GetSessionToken returns temporary credentials acting as the calling user.
func (s *Service) GetSessionToken(ctx context.Context, caller auth.Principal, duration time.Duration) (Credentials, error) {
	if caller.Type != "IAMUser" {
		return Credentials{}, fmt.Errorf("%w: Cannot call GetSessionToken with session credentials", ErrAccessDeniedTrust)
	}
	if duration == 0 {
		duration = 12 * time.Hour
	}
	if duration < 15*time.Minute || duration > 36*time.Hour {
		return Credentials{}, fmt.Errorf("%w: DurationSeconds must be between 900 and 129600", ErrValidation)
	}
	return s.newSession(ctx, Session{UserName: caller.UserName, OwnerID: caller.PrincipalID}, caller, duration)
}

func (s *Service) newSession(ctx context.Context, sess Session, p auth.Principal, d time.Duration) (Credentials, error) {
	now := s.now().UTC()
	id := newID("ASIA", 20)
	secret := newSecret()
	tokBytes := make([]byte, 96)
	if _, err := rand.Read(tokBytes); err != nil {
		return Credentials{}, err
	}
	token := "CFFR" + base64.StdEncoding.EncodeToString(tokBytes)
	var err error
	if sess.Secret, err = s.seal(kindSession, id, []byte(secret)); err != nil {
		return Credentials{}, err
	}
	if sess.Token, err = s.seal(kindSession, id+"/token", []byte(token)); err != nil {
		return Credentials{}, err
	}
	sess.AccessKeyID, sess.Expires, sess.CreatedAt = id, now.Add(d).Truncate(time.Second), now
	if err := s.update(ctx, func(tx metadata.DocTx) error { return put(tx, kindSession, id, "Session", sess, 0) }); err != nil {
		return Credentials{}, err
	}
	p.AccessKeyID, p.Expires = id, sess.Expires
	return Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: token, Expiration: sess.Expires, Principal: p}, nil
}

// ExpireSessions deletes sessions that expired before now (background
// cleanup).
func (s *Service) ExpireSessions(ctx context.Context) (int, error) {
	now := s.now()
	n := 0
	err := s.update(ctx, func(tx metadata.DocTx) error {
		all, err := list[Session](tx, kindSession)
		if err != nil {
			return err
		}
		for _, sess := range all {
			if now.After(sess.Expires) {
				if err := tx.Delete(kindSession, sess.AccessKeyID); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}
