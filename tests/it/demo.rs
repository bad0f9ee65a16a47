//! The demo's sample data: seeded through the runtime role, and seeding again reuses what exists —
//! also after people changed it.

use deskgraph::authz::Role;
use deskgraph::db::Access;
use deskgraph::identity::repo;

use crate::common::{TestDb, trusted_tx};

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.admin().await.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn seeding_twice_reuses_the_sample_data() {
    let db = TestDb::new().await;
    let pool = db.runtime_pool(2);
    let first = deskgraph::demo::seed(&pool).await.unwrap();
    assert!(first.created);
    assert_eq!(count(&db, "select count(*) from tickets").await, 50);
    assert_eq!(count(&db, "select count(*) from organizations").await, 2);
    assert_eq!(first.analyst_keys.len(), 2);
    let roles: Vec<Role> = first
        .members
        .iter()
        .flat_map(|m| m.memberships.iter().map(|(_, _, r)| *r))
        .collect();
    for role in [Role::Owner, Role::Admin, Role::Agent, Role::Viewer] {
        assert!(roles.contains(&role), "no seeded {role}");
    }

    let again = deskgraph::demo::seed(&pool).await.unwrap();
    assert!(!again.created);
    assert!(again.analyst_keys.is_empty());
    assert_eq!(again.orgs, first.orgs);
    assert_eq!(count(&db, "select count(*) from tickets").await, 50);
    assert_eq!(count(&db, "select count(*) from api_keys").await, 2);
}

#[tokio::test]
async fn seeding_again_after_the_owner_left_leaves_the_organization_alone() {
    let db = TestDb::new().await;
    let pool = db.runtime_pool(2);
    let seeded = deskgraph::demo::seed(&pool).await.unwrap();
    let acme = seeded.orgs["acme"];
    let member = |subject: &str| {
        seeded
            .members
            .iter()
            .find(|m| m.subject == subject)
            .unwrap()
            .user_id
    };
    let owner = seeded
        .members
        .iter()
        .find(|m| {
            m.memberships
                .iter()
                .any(|(slug, _, r)| slug == "acme" && *r == Role::Owner)
        })
        .unwrap()
        .user_id;
    let admin = seeded
        .members
        .iter()
        .find(|m| {
            m.memberships
                .iter()
                .any(|(slug, _, r)| slug == "acme" && *r == Role::Admin)
        })
        .unwrap()
        .subject
        .clone();
    // The owner hands the organization over and leaves.
    let tx = trusted_tx(&pool, Some(acme), Some(Role::Owner), Access::ReadWrite).await;
    repo::update_member_role(&tx, member(&admin), Role::Owner)
        .await
        .unwrap();
    repo::delete_member(&tx, owner).await.unwrap();
    tx.commit().await.unwrap();

    let again = deskgraph::demo::seed(&pool).await.unwrap();
    assert!(!again.orgs.contains_key("acme"));
    assert_eq!(again.orgs.get("globex"), seeded.orgs.get("globex"));
    assert_eq!(count(&db, "select count(*) from organizations").await, 2);
    assert_eq!(count(&db, "select count(*) from tickets").await, 50);
}
