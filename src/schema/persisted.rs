//! Persisted operations: a catalogue of registered documents, addressed by the sha256 of their
//! text (the `persistedQuery` extension, as Apollo clients send it). API keys with the `analyst`
//! role may run these and nothing else.
//!
//! A document sent as text is the registered one when it has the same tokens: whitespace, commas
//! and comments do not count ([`canonical`]). A hash is the sha256 of the registered file's bytes.
//!
//! The catalogue is `schema/persisted/*.graphql`, compiled into the binary ([`EMBEDDED`]), so a
//! server started anywhere has it; `DESKGRAPH_PERSISTED_DIR` replaces it with the documents of
//! another folder. Each document holds exactly one named operation; `deskgraph manifest` prints the
//! catalogue as an Apollo persisted query manifest ([`PersistedQueries::manifest`]).

mod canonical;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationType, Selection, SelectionSet,
};
use async_graphql::{Request, Value};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

pub use self::canonical::canonical;
use super::executor::operation_kind;
use crate::error::{AppError, AppResult};

/// The catalogue compiled into the binary: every `schema/persisted/*.graphql`, by file stem. A test
/// fails when this list and the folder differ.
pub const EMBEDDED: &[(&str, &str)] = &[
    (
        "ai_and_credits",
        include_str!("../../schema/persisted/ai_and_credits.graphql"),
    ),
    (
        "dashboard",
        include_str!("../../schema/persisted/dashboard.graphql"),
    ),
    (
        "response_times",
        include_str!("../../schema/persisted/response_times.graphql"),
    ),
    (
        "ticket_volume",
        include_str!("../../schema/persisted/ticket_volume.graphql"),
    ),
    (
        "tickets_export",
        include_str!("../../schema/persisted/tickets_export.graphql"),
    ),
    (
        "workspaces",
        include_str!("../../schema/persisted/workspaces.graphql"),
    ),
];

#[derive(Debug, Clone)]
pub struct Persisted {
    /// File stem, e.g. `tickets_export`.
    pub name: String,
    /// The name of the document's operation, e.g. `TicketsExport`.
    pub operation_name: String,
    pub operation_type: OperationType,
    pub query: String,
    pub sha256: String,
}

impl Persisted {
    /// Puts the fields of every object of `data` (a response's data for this document) in the order
    /// the document selects them, as GraphQL asks. async-graphql inserts a response's fields in the
    /// order their resolvers finish, so two runs on the same data may serialize differently; a
    /// cached response's `ETag` needs the same bytes for the same data.
    pub fn order_as_selected(&self, data: &mut Value) {
        let Ok(doc) = async_graphql::parser::parse_query(&self.query) else {
            return;
        };
        if let Some((_, op)) = doc.operations.iter().next() {
            order_as_selected(data, &[&op.node.selection_set.node], &doc);
        }
    }
}

/// The response keys `sets` select, in document order (through fragments), each with the selection
/// sets of its fields.
fn selected_keys<'d>(
    set: &'d SelectionSet,
    doc: &'d ExecutableDocument,
    keys: &mut Vec<(&'d str, Vec<&'d SelectionSet>)>,
    depth: usize,
) {
    // Validation refuses fragment cycles; this only bounds the walk should one slip through.
    if depth > 64 {
        return;
    }
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let key = field.node.response_key().node.as_str();
                let children = &field.node.selection_set.node;
                match keys.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, sets)) => sets.push(children),
                    None => keys.push((key, vec![children])),
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                    selected_keys(&fragment.node.selection_set.node, doc, keys, depth + 1);
                }
            }
            Selection::InlineFragment(inline) => {
                selected_keys(&inline.node.selection_set.node, doc, keys, depth + 1);
            }
        }
    }
}

fn order_as_selected(value: &mut Value, sets: &[&SelectionSet], doc: &ExecutableDocument) {
    match value {
        Value::List(items) => {
            for item in items {
                order_as_selected(item, sets, doc);
            }
        }
        Value::Object(fields) => {
            let mut keys = Vec::new();
            for set in sets {
                selected_keys(set, doc, &mut keys, 0);
            }
            let position = |name: &async_graphql::Name| {
                keys.iter()
                    .position(|(k, _)| *k == name.as_str())
                    .unwrap_or(usize::MAX)
            };
            fields.sort_by(|a, _, b, _| position(a).cmp(&position(b)));
            for (name, field) in fields.iter_mut() {
                if let Some((_, children)) = keys.iter().find(|(k, _)| *k == name.as_str()) {
                    order_as_selected(field, children, doc);
                }
            }
        }
        _ => {}
    }
}

/// Where the catalogue came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogueSource {
    /// The documents compiled into the binary ([`EMBEDDED`]).
    Embedded,
    /// The `*.graphql` files of a folder (`DESKGRAPH_PERSISTED_DIR`).
    Dir(PathBuf),
}

impl fmt::Display for CatalogueSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded catalogue"),
            Self::Dir(dir) => write!(f, "{}", dir.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PersistedQueries {
    /// Sorted by operation name.
    operations: Vec<Persisted>,
    /// Index into `operations` by the sha256 of the text.
    by_hash: HashMap<String, usize>,
    /// Index into `operations` by the [`canonical`] form of the text.
    by_canonical: HashMap<String, usize>,
    source: CatalogueSource,
}

pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// An Apollo persisted query manifest (`format: apollo-persisted-query-manifest`, version 1).
#[derive(Debug, Serialize)]
pub struct Manifest<'a> {
    pub format: &'static str,
    pub version: u32,
    pub operations: Vec<ManifestOperation<'a>>,
}

#[derive(Debug, Serialize)]
pub struct ManifestOperation<'a> {
    /// The sha256 (hex) of `body`: the hash clients send.
    pub id: &'a str,
    pub name: &'a str,
    /// `query`, `mutation` or `subscription`.
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub body: &'a str,
}

/// The name and type of a document's one named operation.
fn single_named_operation(text: &str) -> anyhow::Result<(String, OperationType)> {
    let doc = async_graphql::parser::parse_query(text).context("not a valid GraphQL document")?;
    match doc.operations {
        DocumentOperations::Multiple(ops) if ops.len() == 1 => {
            let Some((name, op)) = ops.into_iter().next() else {
                bail!("no operation");
            };
            Ok((name.to_string(), op.node.ty))
        }
        DocumentOperations::Multiple(ops) => bail!(
            "holds {} operations; a persisted document holds exactly one",
            ops.len()
        ),
        DocumentOperations::Single(_) => {
            bail!("its operation has no name; a persisted operation needs one")
        }
    }
}

impl PersistedQueries {
    /// The catalogue of the setting `DESKGRAPH_PERSISTED_DIR`: empty, the embedded one; otherwise
    /// the documents of that folder.
    pub fn from_setting(dir: &str) -> anyhow::Result<Self> {
        if dir.is_empty() {
            Self::embedded()
        } else {
            Self::load(Path::new(dir))
        }
    }

    /// The catalogue compiled into the binary.
    pub fn embedded() -> anyhow::Result<Self> {
        let docs = EMBEDDED.iter().map(|(name, query)| {
            (
                (*name).to_owned(),
                (*query).to_owned(),
                format!("schema/persisted/{name}.graphql (embedded)"),
            )
        });
        Self::from_documents(docs, CatalogueSource::Embedded)
    }

    /// Loads every `*.graphql` file of `dir` (which must exist).
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let entries = std::fs::read_dir(dir).with_context(|| {
            format!(
                "cannot read the persisted operations folder {} (DESKGRAPH_PERSISTED_DIR; leave it \
                 empty for the embedded catalogue)",
                dir.display()
            )
        })?;
        let mut docs = Vec::new();
        for entry in entries {
            let path = entry?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("graphql") {
                continue;
            }
            let query = std::fs::read_to_string(&path)
                .with_context(|| format!("failed to read {}", path.display()))?;
            let name = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            docs.push((name, query, path.display().to_string()));
        }
        Self::from_documents(docs, CatalogueSource::Dir(dir.to_owned()))
    }

    /// Builds the catalogue from `(file stem, text, where it comes from)`; refuses a document that
    /// does not parse or does not hold exactly one named operation, and two operations of one name.
    fn from_documents(
        docs: impl IntoIterator<Item = (String, String, String)>,
        source: CatalogueSource,
    ) -> anyhow::Result<Self> {
        let mut operations: Vec<(Persisted, String)> = Vec::new();
        for (name, query, origin) in docs {
            let (operation_name, operation_type) = single_named_operation(&query)
                .with_context(|| format!("persisted operation {origin}"))?;
            if let Some((_, first)) = operations
                .iter()
                .find(|(p, _)| p.operation_name == operation_name)
            {
                bail!("persisted operations {first} and {origin} are both named {operation_name}");
            }
            // (Two identical documents have the same name too.)
            let sha256 = sha256_hex(&query);
            operations.push((
                Persisted {
                    name,
                    operation_name,
                    operation_type,
                    query,
                    sha256,
                },
                origin,
            ));
        }
        let mut operations: Vec<Persisted> = operations.into_iter().map(|(p, _)| p).collect();
        operations.sort_by(|a, b| a.operation_name.cmp(&b.operation_name));
        let by_hash = operations
            .iter()
            .enumerate()
            .map(|(i, p)| (p.sha256.clone(), i))
            .collect();
        // Every registered document parsed, so it has a canonical form. (Two with the same one would
        // have the same operation name, refused above.)
        let by_canonical = operations
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((canonical(&p.query)?, i)))
            .collect();
        Ok(Self {
            operations,
            by_hash,
            by_canonical,
            source,
        })
    }

    /// The operations, by operation name.
    pub fn iter(&self) -> impl Iterator<Item = &Persisted> {
        self.operations.iter()
    }

    pub fn len(&self) -> usize {
        self.operations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    pub fn source(&self) -> &CatalogueSource {
        &self.source
    }

    pub fn get(&self, sha256: &str) -> Option<&Persisted> {
        self.by_hash.get(sha256).map(|&i| &self.operations[i])
    }

    /// The registered operation whose document is `text`, whitespace, commas and comments aside.
    pub fn by_text(&self, text: &str) -> Option<&Persisted> {
        let canonical = canonical(text)?;
        self.by_canonical
            .get(&canonical)
            .map(|&i| &self.operations[i])
    }

    /// The catalogue as an Apollo persisted query manifest, operations sorted by name.
    pub fn manifest(&self) -> Manifest<'_> {
        Manifest {
            format: "apollo-persisted-query-manifest",
            version: 1,
            operations: self
                .iter()
                .map(|p| ManifestOperation {
                    id: &p.sha256,
                    name: &p.operation_name,
                    ty: operation_kind(p.operation_type),
                    body: &p.query,
                })
                .collect(),
        }
    }

    /// Fills in the document of a request that names a persisted operation by hash, and tells whether
    /// the request runs a registered document (by hash, or by sending a registered document's text:
    /// whitespace, commas and comments aside). Either way, the registered text is what runs.
    pub fn resolve(&self, request: &mut Request) -> AppResult<Option<&Persisted>> {
        let hash = match request.extensions.get("persistedQuery") {
            Some(Value::Object(pq)) => match pq.get("sha256Hash") {
                Some(Value::String(hash)) => Some(hash.to_ascii_lowercase()),
                _ => {
                    return Err(AppError::invalid_field(
                        "persistedQuery",
                        "persistedQuery needs a sha256Hash",
                    ));
                }
            },
            Some(_) => {
                return Err(AppError::invalid_field(
                    "persistedQuery",
                    "persistedQuery must be an object",
                ));
            }
            None => None,
        };
        match hash {
            Some(hash) => {
                let found = self.get(&hash).ok_or(AppError::PersistedQueryNotFound)?;
                if !request.query.is_empty()
                    && request.query != found.query
                    && canonical(&request.query) != canonical(&found.query)
                {
                    return Err(AppError::invalid_field(
                        "query",
                        "query does not match its persistedQuery hash",
                    ));
                }
                request.query = found.query.clone();
                Ok(Some(found))
            }
            None => {
                let found = self.by_text(&request.query);
                if let Some(found) = found {
                    request.query = found.query.clone();
                }
                Ok(found)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> PersistedQueries {
        let docs = [(
            "q".to_owned(),
            "query Q { viewer { role } }".to_owned(),
            "q.graphql".to_owned(),
        )];
        PersistedQueries::from_documents(docs, CatalogueSource::Embedded).unwrap()
    }

    fn with_hash(hash: &str) -> Request {
        let mut pq = async_graphql::indexmap::IndexMap::new();
        pq.insert(async_graphql::Name::new("sha256Hash"), Value::from(hash));
        let mut req = Request::new("");
        req.extensions
            .insert("persistedQuery".into(), Value::Object(pq));
        req
    }

    #[test]
    fn a_registered_hash_fills_in_the_document() {
        let reg = registry();
        let hash = sha256_hex("query Q { viewer { role } }");
        let mut req = with_hash(&hash);
        assert_eq!(
            reg.resolve(&mut req).unwrap().map(|p| p.name.as_str()),
            Some("q")
        );
        assert_eq!(req.query, "query Q { viewer { role } }");
    }

    #[test]
    fn an_unknown_hash_is_persisted_query_not_found() {
        let mut req = with_hash(&"0".repeat(64));
        assert!(matches!(
            registry().resolve(&mut req),
            Err(AppError::PersistedQueryNotFound)
        ));
    }

    #[test]
    fn a_registered_document_is_recognised_whatever_its_layout() {
        let reg = registry();
        for text in [
            "query Q { viewer { role } }",
            "query Q { viewer { role } }\n",
            "# the viewer's role\nquery Q {\n  viewer {\n    role\n  }\n}\n",
            "query Q{viewer{role}}",
            "query Q { viewer { role, } }",
        ] {
            let mut req = Request::new(text);
            let found = reg.resolve(&mut req).unwrap();
            assert_eq!(found.map(|p| p.name.as_str()), Some("q"), "{text:?}");
            // What runs is the registered text.
            assert_eq!(req.query, "query Q { viewer { role } }");
        }
        // Another selection is another document.
        let mut req = Request::new("query Q { viewer { role user { id } } }");
        assert!(reg.resolve(&mut req).unwrap().is_none());
        // The text sent along with a hash may be laid out differently too.
        let mut req = with_hash(&sha256_hex("query Q { viewer { role } }"));
        req.query = "query Q {\n  viewer { role }\n}\n".into();
        assert!(reg.resolve(&mut req).unwrap().is_some());
        let mut req = with_hash(&sha256_hex("query Q { viewer { role } }"));
        req.query = "query Q { viewer { user { id } } }".into();
        assert!(reg.resolve(&mut req).is_err());
    }

    #[test]
    fn free_text_is_not_persisted() {
        let mut req = Request::new("{ viewer { role } }");
        assert!(registry().resolve(&mut req).unwrap().is_none());
    }

    fn folder() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/persisted")
    }

    /// `(file stem, text)` of every `*.graphql` file of `schema/persisted`, sorted.
    fn files() -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(folder())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
            .map(|p| {
                let stem = p.file_stem().unwrap().to_str().unwrap().to_owned();
                (stem, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn the_embedded_catalogue_is_exactly_the_folder() {
        let mut embedded: Vec<_> = EMBEDDED
            .iter()
            .map(|(n, q)| ((*n).to_owned(), (*q).to_owned()))
            .collect();
        embedded.sort();
        let names =
            |list: &[(String, String)]| list.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&embedded),
            names(&files()),
            "every schema/persisted/*.graphql must be listed in EMBEDDED (src/schema/persisted.rs), \
             and nothing else"
        );
        assert_eq!(
            embedded,
            files(),
            "an EMBEDDED entry includes another file than its name"
        );
    }

    #[test]
    fn the_embedded_catalogue_and_the_folder_load_alike() {
        let embedded = PersistedQueries::from_setting("").unwrap();
        assert_eq!(embedded.source(), &CatalogueSource::Embedded);
        assert_eq!(embedded.len(), EMBEDDED.len());
        let dir = folder();
        let loaded = PersistedQueries::from_setting(dir.to_str().unwrap()).unwrap();
        assert_eq!(loaded.source(), &CatalogueSource::Dir(dir));
        let summary = |c: &PersistedQueries| {
            c.iter()
                .map(|p| (p.sha256.clone(), p.operation_name.clone(), p.name.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(summary(&embedded), summary(&loaded));
        let ops: Vec<_> = embedded.iter().map(|p| p.operation_name.as_str()).collect();
        assert_eq!(
            ops,
            [
                "AiAndCredits",
                "Dashboard",
                "ResponseTimes",
                "TicketVolume",
                "TicketsExport",
                "Workspaces"
            ]
        );
        assert!(
            embedded
                .iter()
                .all(|p| p.operation_type == OperationType::Query)
        );
    }

    /// A scratch folder with `files`, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn with(files: &[(&str, &str)]) -> Self {
            let dir =
                std::env::temp_dir().join(format!("deskgraph-persisted-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&dir).unwrap();
            for (name, text) in files {
                std::fs::write(dir.join(name), text).unwrap();
            }
            Self(dir)
        }

        fn load(&self) -> anyhow::Result<PersistedQueries> {
            PersistedQueries::from_setting(self.0.to_str().unwrap())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_folder_replaces_the_embedded_catalogue() {
        let dir = Scratch::with(&[
            (
                "b.graphql",
                "mutation Close($id: ID!) { closeTicket(id: $id) { id } }",
            ),
            ("a.graphql", "subscription Events { ticketEvents { kind } }"),
            ("notes.txt", "not a document"),
        ]);
        let catalogue = dir.load().unwrap();
        let ops: Vec<_> = catalogue
            .iter()
            .map(|p| (p.name.as_str(), p.operation_name.as_str(), p.operation_type))
            .collect();
        assert_eq!(
            ops,
            [
                ("b", "Close", OperationType::Mutation),
                ("a", "Events", OperationType::Subscription)
            ]
        );
        // Nothing of the embedded catalogue is left.
        let mut req = with_hash(&sha256_hex(EMBEDDED[0].1));
        assert!(matches!(
            catalogue.resolve(&mut req),
            Err(AppError::PersistedQueryNotFound)
        ));
    }

    #[test]
    fn a_missing_folder_or_a_bad_document_is_an_error() {
        let err = PersistedQueries::from_setting("/nonexistent/deskgraph-persisted").unwrap_err();
        assert!(
            format!("{err:#}").contains("/nonexistent/deskgraph-persisted"),
            "{err:#}"
        );
        for (files, says) in [
            (
                &[("x.graphql", "query X {")][..],
                "not a valid GraphQL document",
            ),
            (&[("x.graphql", "{ viewer { role } }")][..], "has no name"),
            (
                &[(
                    "x.graphql",
                    "query A { viewer { role } } query B { viewer { role } }",
                )][..],
                "holds 2 operations",
            ),
            (
                &[
                    ("x.graphql", "query A { viewer { role } }"),
                    ("y.graphql", "query A { tickets { totalCount } }"),
                ][..],
                "both named A",
            ),
        ] {
            let err = Scratch::with(files).load().unwrap_err();
            assert!(format!("{err:#}").contains(says), "{says}: {err:#}");
        }
        // An empty folder is an empty catalogue.
        assert!(Scratch::with(&[]).load().unwrap().is_empty());
    }

    #[test]
    fn the_manifest_lists_every_operation_by_name_with_its_hash() {
        let catalogue = PersistedQueries::embedded().unwrap();
        let manifest = serde_json::to_value(catalogue.manifest()).unwrap();
        assert_eq!(manifest["format"], "apollo-persisted-query-manifest");
        assert_eq!(manifest["version"], 1);
        let ops = manifest["operations"].as_array().unwrap();
        assert_eq!(ops.len(), EMBEDDED.len());
        let names: Vec<_> = ops.iter().map(|o| o["name"].as_str().unwrap()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        for op in ops {
            let body = op["body"].as_str().unwrap();
            assert_eq!(op["id"], sha256_hex(body));
            assert_eq!(op["type"], "query");
            assert!(EMBEDDED.iter().any(|(_, q)| *q == body));
        }
    }

    #[test]
    fn a_response_is_put_in_the_order_of_its_selection() {
        let query = "query Q { b: viewer { role user { id } } ...F a: tickets { edges { node { title id } } } }\n\
                     fragment F on Query { c: viewer { role } }";
        let persisted = Persisted {
            name: "q".into(),
            operation_name: "Q".into(),
            operation_type: OperationType::Query,
            query: query.into(),
            sha256: sha256_hex(query),
        };
        let mut data = Value::from_json(serde_json::json!({
            "a": {"edges": [{"node": {"id": 1, "title": "x"}}, {"node": {"id": 2, "title": "y"}}]},
            "c": {"role": "OWNER"},
            "b": {"user": {"id": 3}, "role": "OWNER"},
        }))
        .unwrap();
        persisted.order_as_selected(&mut data);
        assert_eq!(
            serde_json::to_string(&data).unwrap(),
            r#"{"b":{"role":"OWNER","user":{"id":3}},"c":{"role":"OWNER"},"a":{"edges":[{"node":{"title":"x","id":1}},{"node":{"title":"y","id":2}}]}}"#
        );
    }

    /// Runs `text` on the real schema with sample values of its required variables only (clients may
    /// leave the optional ones out) and without any request data. Every resolver then fails with one
    /// of our errors (an `AppError` source: the operation has no session); what fails otherwise is
    /// the document against the schema: validation (unknown fields, arguments or types, variables of
    /// the wrong type, too deep or too complex) or arguments that do not coerce (an omitted nullable
    /// variable reaches its argument as null, which a non-null argument refuses even with a default).
    /// Returns those errors.
    async fn schema_errors(text: &str) -> Vec<String> {
        use async_graphql::parser::types::BaseType;
        let doc = async_graphql::parser::parse_query(text).unwrap();
        let mut variables = serde_json::Map::new();
        for (_, op) in doc.operations.iter() {
            for def in &op.node.variable_definitions {
                let def = &def.node;
                if def.var_type.node.nullable || def.default_value.is_some() {
                    continue;
                }
                let BaseType::Named(ty) = &def.var_type.node.base else {
                    panic!("add a sample value for ${}", def.name.node);
                };
                let sample = match ty.as_str() {
                    "DateTime" => serde_json::json!("2025-01-01T00:00:00Z"),
                    "ID" => serde_json::json!(uuid::Uuid::nil().to_string()),
                    "String" => serde_json::json!("x"),
                    "Int" => serde_json::json!(1),
                    "Boolean" => serde_json::json!(true),
                    other => panic!("add a sample value for ${}: {other}", def.name.node),
                };
                variables.insert(def.name.node.to_string(), sample);
            }
        }
        let schema = crate::schema::build_schema(crate::schema::Limits::default());
        let request = Request::new(text).variables(async_graphql::Variables::from_json(
            serde_json::Value::Object(variables),
        ));
        let response = schema.execute(request).await;
        response
            .errors
            .iter()
            .filter(|e| e.source.is_none())
            .map(|e| format!("{} (at {:?})", e.message, e.path))
            .collect()
    }

    #[tokio::test]
    async fn a_document_the_schema_rejects_is_told_apart() {
        assert!(!schema_errors("query X { noSuchField }").await.is_empty());
        // A variable of the wrong type.
        assert!(
            !schema_errors("query X($n: String!) { tickets(first: $n) { totalCount } }")
                .await
                .is_empty()
        );
        assert!(
            schema_errors("query X { viewer { role } }")
                .await
                .is_empty()
        );
    }

    #[tokio::test]
    async fn every_embedded_document_validates_against_the_schema() {
        let mut failures = Vec::new();
        for (name, text) in EMBEDDED {
            let errors = schema_errors(text).await;
            if !errors.is_empty() {
                failures.push(format!("{name}.graphql: {}", errors.join("; ")));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
