//! `c2c verify` as a user runs it: two clusters with the same data (every BSON type
//! that matters, field order differing) are equal (exit 0); each kind of difference is
//! reported precisely (exit 1, JSON report); `--namespaces` limits the comparison; a
//! cluster that cannot be reached is an error (exit 2), without the password.

use std::process::Output;

use bson::{doc, Bson, Document};
use c2c_testbed::{Testbed, TestbedConfig, TestbedHandle};
use mongodb::Client;
use serde_json::{json, Value};

async fn testbed() -> (TestbedHandle, Client) {
    let bed = Testbed::start(TestbedConfig::default())
        .await
        .expect("testbed");
    let client = Client::with_uri_str(bed.uri()).await.expect("client");
    (bed, client)
}

fn documents() -> Vec<Document> {
    (0..5000)
        .map(|i| match i % 5 {
            0 => doc! {"_id": i, "n": i, "s": format!("s{i}"), "nested": {"a": 1, "b": [1, 2, {"c": 3}]}},
            1 => doc! {"_id": format!("k{i}"), "d": 1.5, "l": 7i64},
            2 => doc! {"_id": bson::oid::ObjectId::new(), "when": bson::DateTime::from_millis(i), "bin": bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: vec![1, 2, 3] }},
            3 => doc! {"_id": {"compound": i}, "null": Bson::Null, "dec": "1.10".parse::<bson::Decimal128>().unwrap()},
            _ => doc! {"_id": i as f64 + 0.5, "arr": [], "obj": {}},
        })
        .collect()
}

/// The same document with its fields in reverse order (as another writer may produce).
fn reversed(document: &Document) -> Document {
    let mut out = Document::new();
    let fields: Vec<_> = document.iter().collect();
    for (key, value) in fields.into_iter().rev() {
        out.insert(key.clone(), value.clone());
    }
    out
}

async fn load(source: &Client, destination: &Client) {
    let originals = documents();
    for (client, flip) in [(source, false), (destination, true)] {
        let docs: Vec<Document> = originals
            .iter()
            .map(|d| if flip { reversed(d) } else { d.clone() })
            .collect();
        let db = client.database("shop");
        db.collection::<Document>("items")
            .insert_many(docs)
            .await
            .expect("items");
        db.run_command(doc! {"createIndexes": "items", "indexes": [
            {"key": {"s": 1}, "name": "s_1", "unique": true, "sparse": true},
            {"key": {"when": 1}, "name": "when_1", "expireAfterSeconds": 3600},
        ]})
        .await
        .expect("indexes");
        db.run_command(doc! {"create": "audit", "validator": {"level": {"$type": "string"}}})
            .await
            .expect("audit");
        db.run_command(doc! {"create": "recent", "viewOn": "items", "pipeline": [{"$match": {"n": {"$gt": 10}}}]})
            .await
            .expect("view");
        client
            .database("other")
            .collection::<Document>("notes")
            .insert_one(doc! {"_id": 1, "text": "same"})
            .await
            .expect("notes");
    }
}

async fn verify(source: &str, destination: &str, extra: &[&str]) -> (Option<i32>, Value, String) {
    let output: Output = tokio::process::Command::new(env!("CARGO_BIN_EXE_c2c"))
        .args([
            "verify",
            "--cluster0",
            source,
            "--cluster1",
            destination,
            "--json",
        ])
        .args(extra)
        .kill_on_drop(true)
        .output()
        .await
        .expect("c2c verify");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let report = serde_json::from_str(stdout.trim()).unwrap_or(Value::Null);
    (output.status.code(), report, stderr)
}

fn has(report: &Value, namespace: &str, id: Value, kind: &str) -> bool {
    report["mismatches"].as_array().is_some_and(|all| {
        all.iter()
            .any(|m| m["namespace"] == namespace && m["id"] == id && m["kind"] == kind)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_clusters_pass_and_every_difference_is_reported() {
    let (source_bed, source) = testbed().await;
    let (destination_bed, destination) = testbed().await;
    load(&source, &destination).await;
    let (code, report, stderr) = verify(&source_bed.uri(), &destination_bed.uri(), &[]).await;
    assert_eq!(code, Some(0), "{report} {stderr}");
    assert_eq!(report["equal"], true, "{report}");
    assert_eq!(report["sourceDocuments"], 5001, "{report}");
    assert_eq!(report["destinationDocuments"], 5001, "{report}");

    let items = destination.database("shop").collection::<Document>("items");
    items.delete_one(doc! {"_id": 10}).await.expect("delete");
    items
        .insert_one(doc! {"_id": "stray", "s": "x"})
        .await
        .expect("insert");
    items
        .update_one(doc! {"_id": 20}, doc! {"$set": {"n": 20.0}})
        .await
        .expect("type");
    items
        .update_one(doc! {"_id": "k31"}, doc! {"$set": {"d": 2.5}})
        .await
        .expect("value");
    let db = destination.database("shop");
    db.run_command(doc! {"dropIndexes": "items", "index": "when_1"})
        .await
        .expect("drop index");
    db.run_command(
        doc! {"createIndexes": "items", "indexes": [{"key": {"when": 1}, "name": "when_1"}]},
    )
    .await
    .expect("index without TTL");
    db.run_command(doc! {"collMod": "audit", "validator": {"level": {"$type": "int"}}})
        .await
        .expect("collMod");
    destination
        .database("shop")
        .collection::<Document>("extra")
        .insert_one(doc! {"_id": 1})
        .await
        .expect("extra");

    let (code, report, stderr) = verify(&source_bed.uri(), &destination_bed.uri(), &[]).await;
    assert_eq!(code, Some(1), "{report} {stderr}");
    assert_eq!(report["equal"], false);
    assert!(
        has(&report, "shop.items", json!(10), "missing on destination"),
        "{report}"
    );
    assert!(
        has(
            &report,
            "shop.items",
            json!("stray"),
            "extra on destination"
        ),
        "{report}"
    );
    assert!(
        has(&report, "shop.items", json!(20), "document differs"),
        "{report}"
    );
    assert!(
        has(&report, "shop.items", json!("k31"), "document differs"),
        "{report}"
    );
    assert!(
        has(&report, "shop.items", Value::Null, "index differs"),
        "{report}"
    );
    assert!(
        has(
            &report,
            "shop.audit",
            Value::Null,
            "collection options differ"
        ),
        "{report}"
    );
    assert!(
        has(
            &report,
            "shop.extra",
            Value::Null,
            "namespace extra on destination"
        ),
        "{report}"
    );
    assert_eq!(report["mismatchCount"], 7, "{report}");

    // Only the database without differences: equal.
    let (code, report, _) = verify(
        &source_bed.uri(),
        &destination_bed.uri(),
        &["--namespaces", "other"],
    )
    .await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["sourceDocuments"], 1);

    // The text report names the differences too.
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_c2c"))
        .args([
            "verify",
            "--cluster0",
            &source_bed.uri(),
            "--cluster1",
            &destination_bed.uri(),
            "--namespaces",
            "shop.items",
        ])
        .output()
        .await
        .expect("c2c verify");
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(
        text.contains("shop.items: missing on destination for _id 10"),
        "{text}"
    );
}

#[tokio::test]
async fn unreachable_cluster_is_an_error_without_the_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port();
    let uri = format!(
        "mongodb://alice:s3cret@127.0.0.1:{port}/?serverSelectionTimeoutMS=500&connectTimeoutMS=500"
    );
    let (code, _, stderr) = verify(&uri, &uri, &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");
    let (code, _, stderr) = verify(&uri, &uri, &["--namespaces", ".bad"]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--namespaces"), "{stderr}");
}
