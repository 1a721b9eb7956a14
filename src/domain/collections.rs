//! Collections (SPEC §10): an owner's assets, in an order, behind one link. The request bodies and
//! their parsing into valid values (title, description, lists of asset ids) live here.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::assets::{Asset, parse_description, parse_title};
use crate::error::{AppError, FieldErrors};

/// Most assets one collection holds (and most ids one request may name).
pub const MAX_ITEMS: usize = 1000;

/// A stored collection with its totals.
#[derive(Debug, Clone)]
pub struct Collection {
    pub id: i64,
    pub owner_id: i64,
    pub title: String,
    pub description: String,
    /// How many assets it holds.
    pub item_count: i64,
    /// Their total size in bytes.
    pub total_size: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One asset of a collection, at its place (0 first, no gaps).
#[derive(Debug, Clone)]
pub struct CollectionItem {
    pub asset: Asset,
    pub position: i64,
}

/// `POST /api/v3/collections/` as sent; fields are raw JSON so that a wrong type is our 400 with
/// `fields`, not a generic rejection.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCollectionBody {
    /// 1 to 200 characters (trimmed).
    #[schema(value_type = String)]
    pub title: Option<Value>,
    /// At most 5000 characters.
    #[schema(value_type = Option<String>)]
    pub description: Option<Value>,
}

/// A valid new collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCollection {
    pub title: String,
    pub description: String,
}

impl TryFrom<CreateCollectionBody> for NewCollection {
    type Error = AppError;
    fn try_from(b: CreateCollectionBody) -> Result<NewCollection, AppError> {
        let mut fields = FieldErrors::new();
        let title = match b.title.as_ref() {
            None | Some(Value::Null) => {
                fields.insert("title".into(), "this field is required".into());
                None
            }
            Some(v) => take(&mut fields, "title", text(v).and_then(parse_collection_title)),
        };
        let description = match b.description.as_ref() {
            None | Some(Value::Null) => Some(String::new()),
            Some(v) => take(&mut fields, "description", text(v).and_then(parse_description)),
        };
        match (title, description) {
            (Some(title), Some(description)) if fields.is_empty() => Ok(NewCollection { title, description }),
            _ => Err(AppError::from_fields(fields)),
        }
    }
}

/// `PATCH /api/v3/collections/{id}/` as sent: any of title, description and order.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchCollectionBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub title: Option<Value>,
    /// `null` empties it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Value>,
    /// Asset ids of the collection in their new order. Those listed come first, in this order;
    /// any not listed keep their relative order after them (a full list is a plain reorder). An id
    /// that is not in the collection, or one listed twice, is a 400 naming it in `fields.order`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<i64>>)]
    pub order: Option<Value>,
}

/// A field that is present, even as `null` (`Some(Value::Null)`); absent ones stay None.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// A valid change; None leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionPatch {
    pub title: Option<String>,
    pub description: Option<String>,
    pub order: Option<Vec<i64>>,
}

impl TryFrom<PatchCollectionBody> for CollectionPatch {
    type Error = AppError;
    fn try_from(b: PatchCollectionBody) -> Result<CollectionPatch, AppError> {
        let mut fields = FieldErrors::new();
        let mut patch = CollectionPatch::default();
        match b.title.as_ref() {
            None => {}
            Some(Value::Null) => drop(fields.insert("title".into(), "may not be null".into())),
            Some(v) => patch.title = take(&mut fields, "title", text(v).and_then(parse_collection_title)),
        }
        match b.description.as_ref() {
            None => {}
            Some(Value::Null) => patch.description = Some(String::new()),
            Some(v) => patch.description = take(&mut fields, "description", text(v).and_then(parse_description)),
        }
        match b.order.as_ref() {
            None => {}
            Some(v) => patch.order = take(&mut fields, "order", parse_order(v)),
        }
        if fields.is_empty() { Ok(patch) } else { Err(AppError::from_fields(fields)) }
    }
}

/// `POST /api/v3/collections/{id}/items/` as sent.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddItemsBody {
    /// 1 to 1000 ids of your own assets; they are appended in this order, and one already in the
    /// collection stays where it is.
    #[schema(value_type = Vec<i64>)]
    pub asset_ids: Option<Value>,
}

impl AddItemsBody {
    /// The ids, without repeats, in the order sent.
    pub fn parse(&self) -> Result<Vec<i64>, AppError> {
        let ids = match self.asset_ids.as_ref() {
            None | Some(Value::Null) => Err("this field is required".to_string()),
            Some(v) => parse_asset_ids(v),
        };
        ids.map_err(|why| AppError::validation("asset_ids", why))
    }
}

/// Title of a collection: required, 1 to 200 characters after trimming, no control characters.
pub fn parse_collection_title(raw: &str) -> Result<String, String> {
    let t = parse_title(raw)?;
    if t.is_empty() { Err("must not be empty".into()) } else { Ok(t) }
}

/// A non-empty list of at most `MAX_ITEMS` positive ids; repeats are dropped, the first kept.
pub fn parse_asset_ids(v: &Value) -> Result<Vec<i64>, String> {
    let ids = id_list(v)?;
    if ids.is_empty() {
        return Err("must list at least one asset id".into());
    }
    let mut unique = Vec::with_capacity(ids.len());
    for id in ids {
        if !unique.contains(&id) {
            unique.push(id);
        }
    }
    Ok(unique)
}

/// A list of at most `MAX_ITEMS` positive ids, each once (it may be empty: nothing moves).
fn parse_order(v: &Value) -> Result<Vec<i64>, String> {
    let ids = id_list(v)?;
    let mut twice: Vec<i64> = vec![];
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) && !twice.contains(id) {
            twice.push(*id);
        }
    }
    if twice.is_empty() { Ok(ids) } else { Err(format!("lists {} more than once", join_ids(&twice))) }
}

fn id_list(v: &Value) -> Result<Vec<i64>, String> {
    let Value::Array(items) = v else {
        return Err("must be a list of asset ids".into());
    };
    if items.len() > MAX_ITEMS {
        return Err(format!("must list at most {MAX_ITEMS} asset ids"));
    }
    items
        .iter()
        .map(|i| match i.as_i64() {
            Some(n) if n > 0 => Ok(n),
            _ => Err(format!("must hold positive whole numbers only, not {i}")),
        })
        .collect()
}

/// `1, 2, 3` for messages.
pub fn join_ids(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(", ")
}

fn text(v: &Value) -> Result<&str, String> {
    v.as_str().ok_or_else(|| "must be a string".to_string())
}

fn take<T>(fields: &mut FieldErrors, name: &str, r: Result<T, String>) -> Option<T> {
    r.map_err(|why| fields.insert(name.to_string(), why)).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn create(v: Value) -> Result<NewCollection, AppError> {
        NewCollection::try_from(serde_json::from_value::<CreateCollectionBody>(v).expect("body"))
    }

    fn field(e: AppError, name: &str) -> String {
        match e {
            AppError::Validation { fields, .. } => fields.get(name).cloned().unwrap_or_default(),
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn a_title_is_required_trimmed_and_at_most_200_characters() {
        assert_eq!(
            create(json!({"title": "  Trip  "})).ok(),
            Some(NewCollection { title: "Trip".into(), description: String::new() })
        );
        assert!(field(create(json!({})).expect_err("refused"), "title").contains("required"));
        assert!(field(create(json!({"title": "   "})).expect_err("refused"), "title").contains("empty"));
        assert!(field(create(json!({"title": "x".repeat(201)})).expect_err("refused"), "title").contains("200"));
        assert!(create(json!({"title": "é".repeat(200)})).is_ok());
        assert!(field(create(json!({"title": 5})).expect_err("refused"), "title").contains("string"));
        assert!(
            field(create(json!({"title": "a", "description": "d".repeat(5001)})).expect_err("refused"), "description")
                .contains("5000")
        );
    }

    #[test]
    fn asset_ids_are_a_non_empty_list_of_positive_ids_without_repeats() {
        assert_eq!(parse_asset_ids(&json!([3, 1, 3, 2])), Ok(vec![3, 1, 2]));
        assert!(parse_asset_ids(&json!([])).is_err());
        assert!(parse_asset_ids(&json!("1,2")).is_err());
        assert!(parse_asset_ids(&json!([1, -2])).expect_err("refused").contains("-2"));
        assert!(parse_asset_ids(&json!([0])).is_err());
        assert!(parse_asset_ids(&json!([1.5])).is_err());
        assert!(parse_asset_ids(&json!(["1"])).is_err());
        assert!(parse_asset_ids(&Value::Array((1..=1001).map(Value::from).collect())).is_err());
        assert!(parse_asset_ids(&Value::Array((1..=1000).map(Value::from).collect())).is_ok());
        assert!(field(AddItemsBody::default().parse().expect_err("refused"), "asset_ids").contains("required"));
    }

    #[test]
    fn an_order_names_each_asset_once() {
        let patch = |v: Value| CollectionPatch::try_from(serde_json::from_value::<PatchCollectionBody>(v).expect("b"));
        assert_eq!(patch(json!({"order": [2, 1]})).ok().and_then(|p| p.order), Some(vec![2, 1]));
        assert_eq!(patch(json!({"order": []})).ok().and_then(|p| p.order), Some(vec![]));
        assert!(field(patch(json!({"order": [2, 1, 2]})).expect_err("refused"), "order").contains('2'));
        assert!(field(patch(json!({"title": null})).expect_err("refused"), "title").contains("null"));
        assert_eq!(patch(json!({"description": null})).ok().and_then(|p| p.description), Some(String::new()));
    }
}
