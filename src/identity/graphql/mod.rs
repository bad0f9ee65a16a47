//! GraphQL types and resolvers for identity, one file per aggregate: [`user`] (users, actors),
//! [`organization`] (organizations, the viewer), [`member`], [`invitation`] and [`api_key`]. The
//! module's query and mutation parts are merged here in the order the schema lists their fields.

pub mod api_key;
pub mod invitation;
pub mod member;
pub mod organization;
pub mod user;

use async_graphql::MergedObject;

pub use api_key::{ApiKey, CreatedApiKey};
pub use invitation::{CreatedInvitation, Invitation, Membership};
pub use member::{Member, MemberConnection};
pub use organization::{Organization, Viewer};
pub use user::{Actor, ActorKind, User, load_user};

#[derive(MergedObject, Default)]
pub struct IdentityQuery(
    organization::OrganizationQuery,
    member::MemberQuery,
    invitation::InvitationQuery,
    api_key::ApiKeyQuery,
);

#[derive(MergedObject, Default)]
pub struct IdentityMutation(
    organization::OrganizationMutation,
    invitation::InvitationMutation,
    member::MemberMutation,
    api_key::ApiKeyMutation,
);
