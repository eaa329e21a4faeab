-- Records a one-click unsubscribe (sql/definitions/370_feedback_unsubscribe.sql).
SELECT postrunner.unsubscribe($1)
