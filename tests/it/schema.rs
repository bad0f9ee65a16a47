//! The public contract is snapshotted: `schema/schema.graphql` must be exactly what `deskgraph schema`
//! prints. Regenerate with `UPDATE_SCHEMA=1 cargo test --test it schema`.

#[test]
fn committed_schema_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema/schema.graphql");
    let sdl = deskgraph::schema::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &sdl).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "schema/schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test --test it schema` and commit it"
    );
}

#[test]
fn the_schema_keeps_the_contract_names() {
    let sdl = deskgraph::schema::sdl();
    for name in [
        "input CreateOrganizationInput",
        "input CreateWorkspaceInput",
        "input CreateTicketInput",
        "input UpdateTicketInput",
        "input AddCommentInput",
        "input InviteMemberInput",
        "input AddMemberInput",
        "input UpdateMemberRoleInput",
        "input CreateApiKeyInput",
        "enum TicketStatus",
        "enum TicketPriority",
        "type TicketConnection",
        "totalCount: Int!",
        "filter: TicketFilter",
        "orderBy: TicketOrder",
        "): TicketConnection!",
        "ticket(id: ID!): Ticket!",
        "scalar BigInt",
        "balance: BigInt!",
        "amount: BigInt!",
    ] {
        assert!(sdl.contains(name), "schema lacks `{name}`");
    }
    for role in ["OWNER", "ADMIN", "AGENT", "VIEWER", "ANALYST"] {
        assert!(sdl.contains(&format!("\t{role}\n")), "Role lacks {role}");
    }
}
