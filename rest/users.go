package rest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/bookhub/bookhub/accounts"
	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/store"
)

const usersPath = "/api/v1/users"

const keyUserID = "bookhub.user_id"

// userJSON is an account as the API shows it: never its password hash or
// token generation.
type userJSON struct {
	ID          int64   `json:"id"`
	Email       *string `json:"email"`
	DisplayName string  `json:"display_name"`
	Role        string  `json:"role"`
	Disabled    bool    `json:"disabled"`
	// Password and SignInProvider say how the account signs in.
	Password       bool    `json:"password"`
	SignInProvider *string `json:"oidc_issuer"`
	CreatedAt      string  `json:"created_at"`
	UpdatedAt      string  `json:"updated_at"`
}

func toUserJSON(u store.User) userJSON {
	out := userJSON{ID: u.ID, DisplayName: u.DisplayName, Role: string(u.Role), Disabled: u.Disabled,
		Password: u.PasswordHash != "", CreatedAt: formatTime(u.CreatedAt), UpdatedAt: formatTime(u.UpdatedAt)}
	if u.Email != "" {
		e := u.Email
		out.Email = &e
	}
	if u.OIDCIssuer != "" {
		iss := u.OIDCIssuer
		out.SignInProvider = &iss
	}
	return out
}

// userID parses the :id of a user route.
func (a *api) userID(c *gin.Context) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		_ = c.Error(&apiError{kind: kindInvalidParameter, detail: "the user id must be a positive integer",
			fields: []fieldError{{Field: "id", Message: "must be a positive integer"}}})
		c.Abort()
		return
	}
	c.Set(keyUserID, id)
	c.Next()
}

func (a *api) createUser(c *gin.Context) error {
	in, err := a.decodeStrings(c, fieldSpec{required: []string{"email", "password", "display_name", "role"}})
	if err != nil {
		return err
	}
	role, err := auth.ParseRole(in["role"])
	if err != nil {
		return &apiError{kind: kindValidation, detail: `field "role" must be viewer, editor or admin`,
			fields: []fieldError{{Field: "role", Message: "must be viewer, editor or admin"}}}
	}
	u, err := a.accounts.CreateUser(c.Request.Context(), accounts.NewUser{Email: in["email"],
		DisplayName: in["display_name"], Password: in["password"], Role: role})
	if err != nil {
		return err
	}
	c.Header("Location", usersPath+"/"+strconv.FormatInt(u.ID, 10))
	return writeJSON(c, http.StatusCreated, toUserJSON(u))
}

// usersPageJSON is the body of GET /api/v1/users.
type usersPageJSON struct {
	Users      []userJSON `json:"users"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

func (a *api) listUsers(c *gin.Context) error {
	q, err := url.ParseQuery(c.Request.URL.RawQuery)
	if err != nil {
		return newError(kindInvalidParameter, "the query string is malformed")
	}
	var opts store.UserListOptions
	var fe fieldErrors
	for k, vs := range q {
		v := vs[len(vs)-1]
		switch k {
		case "limit":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 1 || n > store.MaxUserLimit {
				fe.invalidf("limit", "must be an integer from 1 to %d", store.MaxUserLimit)
			}
			opts.Limit = n
		case "cursor":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				fe.invalidf("cursor", "is invalid; start again without a cursor")
			}
			opts.AfterID = n
		default:
			fe.invalidf(k, "is not a known parameter")
		}
	}
	if len(fe.invalid) > 0 { // query parameters: 400, like the book list's
		return &apiError{kind: kindInvalidParameter, detail: summarize(fe.invalid), fields: capFields(fe.invalid)}
	}
	users, next, err := a.accounts.ListUsers(c.Request.Context(), opts)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	out := usersPageJSON{Users: make([]userJSON, 0, len(users))}
	for _, u := range users {
		out.Users = append(out.Users, toUserJSON(u))
	}
	if next > 0 {
		out.NextCursor = strconv.FormatInt(next, 10)
	}
	return writeJSON(c, http.StatusOK, out)
}

func (a *api) getUser(c *gin.Context) error {
	u, err := a.accounts.User(c.Request.Context(), c.GetInt64(keyUserID))
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, toUserJSON(u))
}

// patchUser applies a JSON merge patch of display_name, role and disabled.
func (a *api) patchUser(c *gin.Context) error {
	body, err := readBody(c, a.maxBody)
	if err != nil {
		return err
	}
	members, err := decodeObject(body)
	if err != nil {
		return err
	}
	var ch accounts.Change
	var fe fieldErrors
	for _, m := range members {
		jt := jsonKind(m.raw)
		switch m.key {
		case "display_name":
			var s string
			if jt != "string" || json.Unmarshal(m.raw, &s) != nil {
				fe.badf(m.key, "must be a string, not %s", an(jt))
				continue
			}
			ch.DisplayName = &s
		case "role":
			var s string
			if jt != "string" || json.Unmarshal(m.raw, &s) != nil {
				fe.badf(m.key, "must be a string, not %s", an(jt))
				continue
			}
			r, err := auth.ParseRole(s)
			if err != nil {
				fe.invalidf(m.key, "must be viewer, editor or admin")
				continue
			}
			ch.Role = &r
		case "disabled":
			var b bool
			if jt != "boolean" || json.Unmarshal(m.raw, &b) != nil {
				fe.badf(m.key, "must be a boolean, not %s", an(jt))
				continue
			}
			ch.Disabled = &b
		case "id", "email", "created_at", "updated_at", "password", "oidc_issuer":
			fe.badf(m.key, "cannot be changed here")
		default:
			fe.badf(m.key, "is not a known field")
		}
	}
	if err := fe.err(); err != nil {
		return err
	}
	u, err := a.accounts.UpdateUser(c.Request.Context(), identityOf(c), c.GetInt64(keyUserID), ch)
	if err != nil {
		return err
	}
	return writeJSON(c, http.StatusOK, toUserJSON(u))
}

// fieldSpec lists the string fields a small JSON body must carry.
type fieldSpec struct{ required []string }

// decodeStrings reads a JSON object whose fields are all required strings,
// refusing unknown fields, other types and duplicates like the book decoder.
func (a *api) decodeStrings(c *gin.Context, spec fieldSpec) (map[string]string, error) {
	body, err := readBody(c, a.maxBody)
	if err != nil {
		return nil, err
	}
	members, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(spec.required))
	var fe fieldErrors
	known := make(map[string]bool, len(spec.required))
	for _, k := range spec.required {
		known[k] = true
	}
	for _, m := range members {
		if !known[m.key] {
			fe.badf(m.key, "is not a known field")
			continue
		}
		var s string
		if jt := jsonKind(m.raw); jt != "string" || json.Unmarshal(m.raw, &s) != nil {
			fe.badf(m.key, "must be a string, not %s", an(jt))
			continue
		}
		out[m.key] = s
	}
	for _, k := range spec.required {
		if _, ok := out[k]; !ok && !hasField(members, k) {
			fe.invalidf(k, "is required")
		}
	}
	if err := fe.err(); err != nil {
		return nil, err
	}
	return out, nil
}
