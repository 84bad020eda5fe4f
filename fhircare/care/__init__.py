"""Domain knowledge shared by the workflows and the views: Task and Appointment states, the payer's
decision. One home each, so a rule is never written twice."""
