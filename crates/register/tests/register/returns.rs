//! Returns by receipt: a receipt's code scanned at another till of the store opens the sale
//! (found at Central by the order id the code holds) and the refund is made there.

use kassa_register::returns::receipt_code;
use kassa_register::Error;

use crate::helpers::{eur, sell, sku, sync_until_drained, Shop, PASSWORD};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_scanned_at_another_till_opens_its_sale_there_for_a_refund() {
    crate::helpers::bounded(async move {
        let shop = Shop::open(2).await;
        let (dir1, dir2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let till1 = shop.register(&dir1, "R1").await;
        till1.sync_now().await.unwrap();
        let p = &shop.products;
        let receipt = sell(&till1, &[&p[0], &p[1]], "10.00").await;
        sync_until_drained(&till1).await;
        let code = receipt_code(&receipt.receipt_no, receipt.order_id);

        // At the till that sold it: by the code or the bare number.
        let here = till1.find_sale(&receipt.receipt_no).await.unwrap();
        assert!(here.at_this_till);
        assert_eq!(here.order_id, receipt.order_id);

        let till2 = shop.register(&dir2, "R2").await;
        till2.sync_now().await.unwrap();
        let bare = till2.find_sale(&receipt.receipt_no).await.unwrap_err();
        assert!(matches!(bare, Error::NotFound(_)), "{bare}");
        assert!(bare.to_string().contains("QR code"), "{bare}");
        let found = till2.find_sale(&code).await.unwrap();
        assert!(!found.at_this_till);
        assert_eq!(found.order_id, receipt.order_id);
        assert_eq!(
            found.receipt_no.as_deref(),
            Some(receipt.receipt_no.as_str())
        );
        assert_eq!(found.location, "STORE-1");
        assert_eq!(found.total, receipt.totals.total);
        assert_eq!(found.lines.len(), 2);
        assert_eq!(found.lines[0].returned, 0);

        let approval = till2.approve("manager", PASSWORD).await.unwrap();
        let refund = till2
            .refund(receipt.order_id, vec![(sku("SKU-1"), 1)], approval.id)
            .await
            .unwrap();
        assert_eq!(refund.amount, eur("1.10"));
        let order = shop.order(receipt.order_id).await.unwrap();
        assert_eq!(order.refunded, eur("1.10"));
        let again = till2.find_sale(&code).await.unwrap();
        assert_eq!(again.lines[0].returned, 1, "Central's returned units");

        let approval = till2.approve("manager", PASSWORD).await.unwrap();
        let twice = till2
            .refund(receipt.order_id, vec![(sku("SKU-1"), 1)], approval.id)
            .await
            .unwrap_err();
        assert!(twice.to_string().contains("left to return"), "{twice}");

        // The refund counts in the report of the till that gave it.
        till2.sign_in("manager", PASSWORD).await.unwrap();
        let report = till2.sales_report(2).await.unwrap();
        assert_eq!(report.refunds, eur("1.10"));
        assert_eq!(report.refund_count, 1);

        let junk = till2.find_sale("not a receipt!").await.unwrap_err();
        assert!(matches!(junk, Error::Invalid(_)), "{junk}");
    })
    .await;
}
