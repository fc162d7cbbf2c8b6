package audit

import (
	"encoding/json"
	"unicode/utf8"
)

// appendEvent appends ev's JSON to b: the bytes encoding/json.Marshal
// writes for it (FuzzAppendEvent holds the two equal), without
// reflection. Every request writes one record, so this is on the path of
// every answer; the free-form members (requestParameters,
// responseElements, serviceEventDetails) still go through json.Marshal.
func appendEvent(b []byte, ev *Event) ([]byte, error) {
	b = append(b, `{"eventVersion":`...)
	b = appendString(b, ev.EventVersion)
	b = append(b, `,"userIdentity":`...)
	b = appendUserIdentity(b, &ev.UserIdentity)
	b = appendField(b, `,"eventTime":`, ev.EventTime)
	b = appendField(b, `,"eventSource":`, ev.EventSource)
	b = appendField(b, `,"eventName":`, ev.EventName)
	b = appendField(b, `,"awsRegion":`, ev.AWSRegion)
	b = appendField(b, `,"sourceIPAddress":`, ev.SourceIPAddress)
	b = appendField(b, `,"userAgent":`, ev.UserAgent)
	b = appendOmitEmpty(b, `,"errorCode":`, ev.ErrorCode)
	b = appendOmitEmpty(b, `,"errorMessage":`, ev.ErrorMessage)
	var err error
	b = append(b, `,"requestParameters":`...)
	if b, err = appendAny(b, ev.RequestParameters); err != nil {
		return nil, err
	}
	b = append(b, `,"responseElements":`...)
	if b, err = appendAny(b, ev.ResponseElements); err != nil {
		return nil, err
	}
	b = appendOmitEmpty(b, `,"requestID":`, ev.RequestID)
	b = appendField(b, `,"eventID":`, ev.EventID)
	b = appendBool(b, `,"readOnly":`, ev.ReadOnly)
	if len(ev.Resources) > 0 {
		b = append(b, `,"resources":[`...)
		for i := range ev.Resources {
			if i > 0 {
				b = append(b, ',')
			}
			r := &ev.Resources[i]
			b = append(b, `{"ARN":`...)
			b = appendString(b, r.ARN)
			b = appendOmitEmpty(b, `,"accountId":`, r.AccountID)
			b = appendOmitEmpty(b, `,"type":`, r.Type)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendField(b, `,"eventType":`, ev.EventType)
	b = appendBool(b, `,"managementEvent":`, ev.ManagementEvent)
	b = appendField(b, `,"recipientAccountId":`, ev.RecipientAccountID)
	if ev.ServiceEventDetails != nil {
		b = append(b, `,"serviceEventDetails":`...)
		if b, err = appendAny(b, ev.ServiceEventDetails); err != nil {
			return nil, err
		}
	}
	b = appendOmitEmpty(b, `,"vpcEndpointId":`, ev.VPCEndpointID)
	b = appendField(b, `,"eventCategory":`, ev.EventCategory)
	if t := ev.TLSDetails; t != nil {
		b = append(b, `,"tlsDetails":{`...)
		n := len(b)
		b = appendOmitEmpty(b, `,"tlsVersion":`, t.TLSVersion)
		b = appendOmitEmpty(b, `,"cipherSuite":`, t.CipherSuite)
		b = appendOmitEmpty(b, `,"clientProvidedHostHeader":`, t.ClientProvidedHostHeader)
		b = dropLeadingComma(b, n)
		b = append(b, '}')
	}
	return append(b, '}'), nil
}

func appendUserIdentity(b []byte, id *UserIdentity) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, id.Type)
	b = appendOmitEmpty(b, `,"principalId":`, id.PrincipalID)
	b = appendOmitEmpty(b, `,"arn":`, id.ARN)
	b = appendOmitEmpty(b, `,"accountId":`, id.AccountID)
	b = appendOmitEmpty(b, `,"accessKeyId":`, id.AccessKeyID)
	b = appendOmitEmpty(b, `,"userName":`, id.UserName)
	if sc := id.SessionContext; sc != nil {
		b = append(b, `,"sessionContext":{`...)
		if si := sc.SessionIssuer; si != nil {
			b = append(b, `"sessionIssuer":{"type":`...)
			b = appendString(b, si.Type)
			b = appendField(b, `,"principalId":`, si.PrincipalID)
			b = appendField(b, `,"arn":`, si.ARN)
			b = appendField(b, `,"accountId":`, si.AccountID)
			b = appendField(b, `,"userName":`, si.UserName)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = appendOmitEmpty(b, `,"invokedBy":`, id.InvokedBy)
	return append(b, '}')
}

// dropLeadingComma removes the comma the first member written after
// position n (an object's opening brace) began with.
func dropLeadingComma(b []byte, n int) []byte {
	if len(b) > n && b[n] == ',' {
		return append(b[:n], b[n+1:]...)
	}
	return b
}

func appendField(b []byte, key, v string) []byte {
	return appendString(append(b, key...), v)
}

func appendOmitEmpty(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	return appendField(b, key, v)
}

func appendBool(b []byte, key string, v bool) []byte {
	b = append(b, key...)
	if v {
		return append(b, "true"...)
	}
	return append(b, "false"...)
}

func appendAny(b []byte, v any) ([]byte, error) {
	if v == nil {
		return append(b, "null"...), nil
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, data...), nil
}

const hexDigits = "0123456789abcdef"

// plain marks the ASCII bytes a JSON string holds as they are.
var plain = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// plainWord reports whether the bytes of w are all plain, testing them at
// once.
func plainWord(w uint64) bool {
	return (w|below(w, 0x20)|zero(w^'"'*ones)|zero(w^'\\'*ones)|zero(w^'<'*ones)|zero(w^'>'*ones)|zero(w^'&'*ones))&highs == 0
}

// word is the first 8 bytes of s, little endian.
func word(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

const ones, highs = 0x0101010101010101, 0x8080808080808080

// zero sets the high bit of a byte of its result (among other bits) if a
// byte of v is zero, and only then: a borrow only ever marks a byte above
// a zero one.
func zero(v uint64) uint64 { return (v - ones) &^ v }

// below is zero for the bytes of v below c (at most 0x80) rather than 0.
func below(v, c uint64) uint64 { return (v - c*ones) &^ v }

// appendString appends s as a JSON string the way encoding/json writes it
// (HTML-safe: <, > and & escaped; invalid UTF-8 as U+FFFD; U+2028 and
// U+2029 escaped).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if i+8 <= len(s) && plainWord(word(s[i:])) {
			i += 8
			continue
		}
		if c := s[i]; c < utf8.RuneSelf {
			if plain[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
