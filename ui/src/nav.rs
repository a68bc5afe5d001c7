//! Which screens a role sees, in the order the status bar lists them. The register core checks
//! the role again on every manager command: hiding a screen here is for the cashier's sake,
//! not the only guard.

use kassa_domain::Role;

/// The register's screens once someone is signed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Sell,
    Shift,
    Refund,
    Catalog,
    Stock,
    Reports,
    Conflicts,
    Staff,
    Shortfalls,
}

impl Screen {
    /// What the navigation button says.
    pub fn label(self) -> &'static str {
        match self {
            Screen::Sell => "Sell",
            Screen::Shift => "Shift",
            Screen::Refund => "Refund",
            Screen::Catalog => "Catalog",
            Screen::Stock => "Stock",
            Screen::Reports => "Reports",
            Screen::Conflicts => "Conflicts",
            Screen::Staff => "Staff",
            Screen::Shortfalls => "Shortfalls",
        }
    }

    /// The navigation button's element id (`nav-catalog`), which the e2e test clicks.
    pub fn nav_id(self) -> String {
        format!("nav-{}", self.label().to_lowercase())
    }

    /// The keyboard shortcut that opens it (F1, F2, …). F8 is the selling screen's *Park
    /// cart*, so the screens after it take F9 and F10.
    pub fn key(self) -> &'static str {
        match self {
            Screen::Sell => "F1",
            Screen::Refund => "F2",
            Screen::Catalog => "F3",
            Screen::Stock => "F4",
            Screen::Reports => "F5",
            Screen::Conflicts => "F6",
            Screen::Staff => "F7",
            Screen::Shortfalls => "F9",
            Screen::Shift => "F10",
        }
    }

    /// Only managers (and admins) work here; refunds ask a manager's approval instead.
    pub fn needs_manager(self) -> bool {
        matches!(
            self,
            Screen::Catalog
                | Screen::Stock
                | Screen::Reports
                | Screen::Conflicts
                | Screen::Staff
                | Screen::Shortfalls
        )
    }
}

/// Every screen, in navigation order.
pub const SCREENS: [Screen; 9] = [
    Screen::Sell,
    Screen::Shift,
    Screen::Refund,
    Screen::Catalog,
    Screen::Stock,
    Screen::Reports,
    Screen::Conflicts,
    Screen::Staff,
    Screen::Shortfalls,
];

/// May `role` open `screen`? Customers use the online shop, and a register's own device
/// session is no person: neither opens a screen.
pub fn allowed(role: Role, screen: Screen) -> bool {
    match role {
        Role::Admin | Role::Manager => true,
        Role::Cashier => !screen.needs_manager(),
        Role::Customer | Role::Register => false,
    }
}

/// The screens `role` sees, leaving out those this build of the register does not offer.
pub fn screens_for(role: Role, offered: &[Screen]) -> Vec<Screen> {
    SCREENS
        .into_iter()
        .filter(|s| offered.contains(s) && allowed(role, *s))
        .collect()
}

/// The screen a key press opens, if `role` may open it.
pub fn screen_for_key(role: Role, offered: &[Screen], key: &str) -> Option<Screen> {
    screens_for(role, offered)
        .into_iter()
        .find(|s| s.key() == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cashier_sells_and_refunds_and_sees_no_manager_screen() {
        assert_eq!(
            screens_for(Role::Cashier, &SCREENS),
            [Screen::Sell, Screen::Shift, Screen::Refund]
        );
        assert_eq!(screen_for_key(Role::Cashier, &SCREENS, "F3"), None);
        assert!(!allowed(Role::Cashier, Screen::Stock));
    }

    #[test]
    fn managers_and_admins_see_every_screen_in_order() {
        for role in [Role::Manager, Role::Admin] {
            assert_eq!(screens_for(role, &SCREENS), SCREENS);
        }
        assert_eq!(
            screen_for_key(Role::Manager, &SCREENS, "F3"),
            Some(Screen::Catalog)
        );
        assert_eq!(
            screen_for_key(Role::Manager, &SCREENS, "F7"),
            Some(Screen::Staff)
        );
        assert_eq!(screen_for_key(Role::Cashier, &SCREENS, "F7"), None);
        assert_eq!(
            screen_for_key(Role::Manager, &SCREENS, "F9"),
            Some(Screen::Shortfalls)
        );
        assert_eq!(screen_for_key(Role::Cashier, &SCREENS, "F9"), None);
        assert_eq!(
            screen_for_key(Role::Manager, &SCREENS, "F8"),
            None,
            "F8 parks the cart"
        );
        assert_eq!(Screen::Shortfalls.nav_id(), "nav-shortfalls");
        assert_eq!(Screen::Catalog.nav_id(), "nav-catalog");
    }

    #[test]
    fn screens_not_offered_are_left_out_and_customers_get_none() {
        let offered = [Screen::Sell, Screen::Catalog];
        assert_eq!(screens_for(Role::Manager, &offered), offered);
        assert!(screens_for(Role::Customer, &SCREENS).is_empty());
        assert!(screens_for(Role::Register, &SCREENS).is_empty());
    }
}
