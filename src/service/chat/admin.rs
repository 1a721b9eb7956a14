//! Companies (chat tenants, each with a widget key) and their agents (admins only; checked by the
//! caller).

use crate::app::AppState;
use crate::domain::chat::{Company, parse_company_name};
use crate::domain::users::User;
use crate::error::{AppError, AppResult};

/// A widget key: 32 random URL-safe characters.
fn widget_key() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

/// Creates a company with a fresh widget key.
pub async fn create_company(state: &AppState, name: &str) -> AppResult<Company> {
    let name = parse_company_name(name).map_err(|w| AppError::validation("name", w))?;
    let uuid = uuid::Uuid::new_v4().to_string();
    let company = state.store.insert_company(&uuid, &name, &widget_key(), state.clock.now_ms()).await?;
    tracing::info!(company_id = %company.uuid, "company created");
    Ok(company)
}

/// The companies `user` works for (admins: every company).
pub async fn companies_of(state: &AppState, user: &User) -> AppResult<Vec<Company>> {
    Ok(state.store.companies(if user.is_admin() { None } else { Some(user.id) }).await?)
}

/// Makes account `user_id` an agent of the company; `true` when it was not one already.
pub async fn add_agent(state: &AppState, company_id: &str, user_id: i64) -> AppResult<(Company, User, bool)> {
    let company = state.store.company_by_uuid(company_id).await?.ok_or(AppError::NotFound("company"))?;
    let user = state.store.user_by_id(user_id).await?.ok_or(AppError::NotFound("user"))?;
    let added = state.store.add_agent(company.id, user.id, state.clock.now_ms()).await?;
    Ok((company, user, added))
}

/// Removes an agent from the company: their chat sockets of this company close now, on every
/// instance.
pub async fn remove_agent(state: &AppState, company_id: &str, user_id: i64) -> AppResult<()> {
    let company = state.store.company_by_uuid(company_id).await?.ok_or(AppError::NotFound("company"))?;
    if !state.store.remove_agent(company.id, user_id).await? {
        return Err(AppError::NotFound("agent"));
    }
    state.rooms.revoke(crate::bus::Revocation::Agent { user_id, company_id: company.id });
    Ok(())
}
