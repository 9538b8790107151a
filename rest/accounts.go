package rest

import (
	"context"
	"net/http"

	"github.com/bookhub/bookhub/accounts"
	"github.com/bookhub/bookhub/auth"
	"github.com/bookhub/bookhub/signin"
	"github.com/bookhub/bookhub/store"
)

// Accounts is what the API needs for sign-in and user management.
// *accounts.Service satisfies it.
type Accounts interface {
	Verifier
	Login(ctx context.Context, email, password, clientAddr string) (accounts.Pair, error)
	Refresh(ctx context.Context, refresh, clientAddr string) (accounts.Pair, error)
	Logout(ctx context.Context, refresh string) error
	Register(ctx context.Context, r accounts.Registration) (accounts.Pair, error)
	SignInExternal(ctx context.Context, e accounts.External) (accounts.Pair, error)
	Me(ctx context.Context, id auth.Identity) (store.User, error)
	CreateUser(ctx context.Context, u accounts.NewUser) (store.User, error)
	ListUsers(ctx context.Context, opts store.UserListOptions) ([]store.User, int64, error)
	User(ctx context.Context, id int64) (store.User, error)
	UpdateUser(ctx context.Context, actor auth.Identity, id int64, c accounts.Change) (store.User, error)
	IssueTicket(ctx context.Context, token string) (accounts.Ticket, error)
}

// SignInProvider is one "Sign in with ..." provider. *signin.Provider
// satisfies it.
type SignInProvider interface {
	Name() string
	Begin(w http.ResponseWriter, r *http.Request) error
	Finish(w http.ResponseWriter, r *http.Request) (signin.External, error)
}
